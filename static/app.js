/* Proliferate issue browser: small enhancements only. Every page works without this file:
 * filters have an Apply button, bulk actions are plain form buttons, the frames toggle and the
 * chart range are links. Loaded from /static (CSP: script-src 'self'), no inline handlers. */
(function () {
  'use strict';

  function all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  // The browser's time zone, for the server to show times in when the account has not chosen
  // one: a cookie (a name such as Europe/Paris, nothing secret), written only when it changes.
  // Without this script the pages stay in UTC.
  (function () {
    var zone = '';
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || '';
    } catch (error) {
      return;
    }
    if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+){0,2}$/.test(zone) || zone.length > 64) return;
    var now = document.cookie.match(/(?:^|;\s*)proliferate_tz=([^;]*)/);
    if (now && now[1] === zone) return;
    document.cookie = 'proliferate_tz=' + zone + '; path=/; max-age=31536000; SameSite=Lax' +
      (window.location.protocol === 'https:' ? '; Secure' : '');
  })();

  // Filters apply as soon as a select changes.
  all('form[data-autosubmit]').forEach(function (form) {
    all('select', form).forEach(function (select) {
      select.addEventListener('change', function () {
        form.submit();
      });
    });
  });

  // Bulk actions: select all, shift-click ranges, buttons enabled only with a selection.
  all('form[data-bulk]').forEach(function (form) {
    var boxes = all('input[type=checkbox][name=issue]', form);
    var master = form.querySelector('[data-select-all]');
    var buttons = all('[data-needs-selection]', form);
    var counter = form.querySelector('[data-selected-count]');
    var last = null;
    if (!boxes.length) {
      buttons.forEach(function (b) { b.disabled = true; });
      return;
    }
    if (master) master.closest('label').hidden = false;

    function update() {
      var n = boxes.filter(function (b) { return b.checked; }).length;
      buttons.forEach(function (b) { b.disabled = n === 0; });
      if (counter) counter.textContent = n ? n + ' selected' : '';
      if (master) {
        master.checked = n === boxes.length;
        master.indeterminate = n > 0 && n < boxes.length;
      }
    }

    boxes.forEach(function (box, index) {
      box.addEventListener('click', function (event) {
        if (event.shiftKey && last !== null && last !== index) {
          var from = Math.min(last, index);
          var to = Math.max(last, index);
          for (var i = from; i <= to; i++) boxes[i].checked = box.checked;
        }
        last = index;
        update();
      });
    });
    if (master) {
      master.addEventListener('change', function () {
        boxes.forEach(function (b) { b.checked = master.checked; });
        update();
      });
    }
    update();
  });

  // Stack trace: original (source-mapped) or raw frames without a reload.
  all('[data-frames-toggle]').forEach(function (nav) {
    var section = nav.closest('section') || document;
    all('a[data-frames-show]', nav).forEach(function (link) {
      link.addEventListener('click', function (event) {
        event.preventDefault();
        var view = link.getAttribute('data-frames-show');
        all('[data-frames]', section).forEach(function (block) {
          block.hidden = block.getAttribute('data-frames') !== view;
        });
        all('a[data-frames-show]', nav).forEach(function (other) {
          if (other === link) other.setAttribute('aria-current', 'true');
          else other.removeAttribute('aria-current');
        });
        if (window.history && window.history.replaceState) {
          window.history.replaceState(null, '', link.getAttribute('href'));
        }
      });
    });
  });

  // Copy buttons beside snippets, keys and one-time secrets.
  all('button.copy[data-copy]').forEach(function (button) {
    var target = document.getElementById(button.getAttribute('data-copy'));
    if (!target) return;
    button.hidden = false;
    button.addEventListener('click', function () {
      var text = target.textContent;
      function done(label) {
        button.textContent = label;
        window.setTimeout(function () { button.textContent = 'Copy'; }, 1500);
      }
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(function () { done('Copied'); }, function () {
          selectText(target);
          done('Press Ctrl+C');
        });
      } else {
        selectText(target);
        done('Press Ctrl+C');
      }
    });
  });

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Charts: one tab stop; arrow keys move between bars, and the focused or hovered bar's span
  // and count show under the chart (the same text is each bar's title and accessible name).
  all('svg[data-chart]').forEach(function (chart) {
    var slots = all('rect.slot', chart);
    var tip = chart.parentNode.parentNode.querySelector('[data-chart-tip]');
    function show(slot) {
      if (!tip) return;
      tip.textContent = slot.getAttribute('data-tip');
      tip.hidden = false;
    }
    slots.forEach(function (slot, index) {
      slot.addEventListener('focus', function () { show(slot); });
      slot.addEventListener('mouseenter', function () { show(slot); });
      slot.addEventListener('keydown', function (event) {
        var step = {ArrowLeft: -1, ArrowRight: 1, Home: -index, End: slots.length - 1 - index}[event.key];
        if (step === undefined) return;
        event.preventDefault();
        var next = slots[Math.max(0, Math.min(slots.length - 1, index + step))];
        slot.setAttribute('tabindex', '-1');
        next.setAttribute('tabindex', '0');
        next.focus();
      });
    });
  });

  // A second thought before revoking or removing.
  all('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.getAttribute('data-confirm'))) event.preventDefault();
    });
  });

  // Keyboard shortcuts, as on most trackers. In a list: j/k move a visible selection, o or
  // Enter opens it, x selects it, e resolves, i ignores and a assigns it to me (or the rows
  // ticked); on an issue, j/k open the older/newer event and e and i act on it; everywhere /
  // searches and ? lists the keys. Never while typing in a field.
  var search = document.querySelector('[data-search]');
  var bulk = document.querySelector('form[data-bulk]');
  var rows = bulk ? all('tr.issue-row', bulk) : [];
  var current = -1;
  var dialog = null;

  var eventNav = document.querySelector('nav.event-nav');
  var KEYS = bulk ? [
    ['j / k', 'next / previous issue'],
    ['o or Enter', 'open the selected issue'],
    ['x', 'tick the selected issue'],
    ['e', 'resolve (the ticked issues, else the selected one)'],
    ['i', 'ignore (the ticked issues, else the selected one)'],
    ['a', 'assign to me (the ticked issues, else the selected one)'],
    ['/', 'search'],
    ['?', 'this list']
  ] : [
    eventNav && ['j / k', 'older / newer event'],
    document.querySelector('form input[name=status]') && ['e / i', 'resolve / ignore this issue'],
    search && ['/', 'search'],
    ['?', 'this list']
  ].filter(Boolean);

  function followEvent(rel) {
    var link = eventNav && eventNav.querySelector('a[rel="' + rel + '"]');
    if (link) window.location.assign(link.href);
  }

  function typing(target) {
    var tag = (target && target.tagName) || '';
    return /^(INPUT|TEXTAREA|SELECT)$/.test(tag) || (target && target.isContentEditable);
  }

  function move(step) {
    if (!rows.length) return;
    if (current >= 0) rows[current].classList.remove('kbd-current');
    current = Math.max(0, Math.min(rows.length - 1, current + step));
    var row = rows[current];
    row.classList.add('kbd-current');
    var link = row.querySelector('a.issue-title');
    if (link) link.focus({preventScroll: true});
    row.scrollIntoView({block: 'nearest'});
  }

  function openCurrent() {
    var link = current >= 0 && rows[current].querySelector('a.issue-title');
    if (link) window.location.assign(link.href);
  }

  function tickCurrent() {
    var box = current >= 0 && rows[current].querySelector('input[name=issue]');
    if (box) box.click();
  }

  function act(action, status) {
    if (bulk) {
      var ticked = all('input[name=issue]:checked', bulk).length;
      if (!ticked) tickCurrent();
      var button = bulk.querySelector('button[name=action][value="' + action + '"]');
      if (button && all('input[name=issue]:checked', bulk).length) {
        button.disabled = false;
        button.click();
      }
      return;
    }
    var input = document.querySelector('form input[name=status][value="' + status + '"]');
    var form = input && input.form;
    var submit = form && form.querySelector('button[type=submit], button:not([type])');
    if (submit) submit.click();
  }

  function showKeys() {
    if (!dialog) {
      dialog = document.createElement('dialog');
      dialog.className = 'shortcuts';
      dialog.setAttribute('aria-labelledby', 'shortcuts-title');
      var title = document.createElement('h2');
      title.id = 'shortcuts-title';
      title.textContent = 'Keyboard shortcuts';
      var list = document.createElement('dl');
      KEYS.forEach(function (pair) {
        var key = document.createElement('dt');
        var kbd = document.createElement('kbd');
        kbd.textContent = pair[0];
        key.appendChild(kbd);
        var what = document.createElement('dd');
        what.textContent = pair[1];
        list.appendChild(key);
        list.appendChild(what);
      });
      var close = document.createElement('button');
      close.type = 'button';
      close.textContent = 'Close';
      close.addEventListener('click', function () { dialog.close(); });
      dialog.appendChild(title);
      dialog.appendChild(list);
      dialog.appendChild(close);
      document.body.appendChild(dialog);
    }
    if (!dialog.open) dialog.showModal();
  }

  document.addEventListener('keydown', function (event) {
    if (event.metaKey || event.ctrlKey || event.altKey || event.defaultPrevented) return;
    if (dialog && dialog.open) return;
    var key = event.key;
    if (key === 'Enter') {
      // Enter on a focused link opens it anyway; this covers a selection that lost focus.
      if (current >= 0 && !typing(event.target) && !/^(A|BUTTON|SUMMARY)$/.test(event.target.tagName)) {
        event.preventDefault();
        openCurrent();
      }
      return;
    }
    if (typing(event.target)) return;
    var handled = true;
    if (key === '/' && search) {
      search.focus();
      search.select();
    } else if (key === '?') {
      showKeys();
    } else if ((key === 'j' || key === 'k') && rows.length) {
      move(key === 'j' ? 1 : -1);
    } else if ((key === 'j' || key === 'k') && eventNav) {
      followEvent(key === 'j' ? 'prev' : 'next');
    } else if (key === 'a' && bulk) {
      act('assign_me', null);
    } else if (key === 'o' && current >= 0) {
      openCurrent();
    } else if (key === 'x' && current >= 0) {
      tickCurrent();
    } else if (key === 'e') {
      act('resolve', 'resolved');
    } else if (key === 'i') {
      act('ignore', 'ignored');
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });
})();
