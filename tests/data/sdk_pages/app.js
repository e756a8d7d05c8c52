// Page code for the browser SDK tests: named functions in a file of its own, so every
// error has real frames (function + file) for the server to group on.
function processData(data) {
  return data.items.length;
}

function onSyncClick() {
  processData({});
}

async function loadReport(page) {
  await new Promise(function (resolve) { setTimeout(resolve, 5); });
  throw new RangeError('report page ' + page + ' out of range');
}

function onAsyncClick() {
  loadReport(7);
}

function onRejectClick() {
  Promise.reject({ code: 42, reason: 'quota exceeded' });
}

function validateOrder(order) {
  if (!order.id) throw new TypeError('order is invalid');
  if (!order.total) throw new TypeError('order is invalid');
  return order;
}

function onValidateClick(event) {
  validateOrder(JSON.parse(event.currentTarget.dataset.order));
}

function onOpenSettings(event) {
  event.preventDefault(); // a single-page app: the router, not the browser, navigates
  history.pushState({}, '', '/settings?api_token=s3cr3t&tab=profile');
}

function loadProfile() {
  return fetch('/profile.json?access_token=s3cr3t&v=2').then(function (res) { return res.json(); });
}

function renderProfile(profile) {
  return profile.name.first.toUpperCase();
}

function onSaveClick() {
  console.warn('saving profile', { draft: true });
  loadProfile().then(function (profile) {
    renderProfile(profile);
  });
}

function checkout() {
  throw new Error('checkout interrupted by navigation');
}

function onLeaveClick() {
  try {
    checkout();
  } finally {
    // Navigate away at once: only a beacon on pagehide can still deliver the error.
    location.href = '/other.html';
  }
}

function spin(times) {
  for (var i = 0; i < times; i++) {
    try {
      throw new Error('tight loop failure');
    } catch (err) {
      Proliferate.captureException(err, { extra: { iteration: i } });
    }
  }
}

document.getElementById('sync').addEventListener('click', onSyncClick);
document.getElementById('async').addEventListener('click', onAsyncClick);
document.getElementById('reject').addEventListener('click', onRejectClick);
document.getElementById('validate-a').addEventListener('click', onValidateClick);
document.getElementById('validate-b').addEventListener('click', onValidateClick);
document.getElementById('settings').addEventListener('click', onOpenSettings);
document.getElementById('save').addEventListener('click', onSaveClick);
document.getElementById('leave').addEventListener('click', onLeaveClick);
