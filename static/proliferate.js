/*! Proliferate browser SDK: captures errors, breadcrumbs and context in the page and sends them
 * to {endpoint}/api/v1/errors/batch in the documented ingest shape. One plain file, no build step.
 * It must never throw into the page nor slow it: every entry point and hook is wrapped.
 *
 *   <script src="https://errors.example.com/static/proliferate.js"></script>
 *   <script>Proliferate.init({ apiKey: 'pk_...', environment: 'production', release: '1.4.0' });</script>
 *
 * init options: apiKey, endpoint (default: the origin this script was loaded from), environment,
 * release, sampleRate (0..1), beforeSend(event) -> event | null, maxBreadcrumbs (100),
 * batchWindowMs (2000), maxBatchEvents (10), retryBaseMs (1000), maxRetries (6).
 * Breadcrumbs are recorded from load; events only after init() (they need the key). */
(function (win, doc) {
  'use strict';
  if (!win || !doc || win.Proliferate) return;

  var INGEST_PATH = '/api/v1/errors/batch';
  var SESSION_IDLE_MS = 30 * 60 * 1000; // a session ends after 30 minutes without activity
  var MAX_QUEUE = 100; // undelivered events kept in memory; the oldest go first
  var MAX_BATCH = 100; // the server accepts at most 100 events per batch
  // Browsers refuse keepalive fetches and beacons past 64 KiB in flight; stay under it.
  var KEEPALIVE_BYTES = 60000;
  var REPEAT_MS = 1000; // the same error again within 1 s counts as a tight loop
  var LEVELS = { error: 1, warning: 1, info: 1 };
  var SECRET = /pass|secret|token|key|auth|sig|session|code|cred|jwt|otp/i;

  var nativeFetch = win.fetch && win.fetch.bind(win);
  var utf8 = win.TextEncoder && new win.TextEncoder();
  var cfg = {
    // Events go back to where the script came from, unless init() says otherwise. Without a
    // current script (module or eval) the page's own origin is used.
    endpoint: origin(doc.currentScript && doc.currentScript.src),
    sampleRate: 1,
    maxBreadcrumbs: 100,
    batchWindowMs: 2000,
    maxBatchEvents: 10,
    retryBaseMs: 1000,
    maxRetries: 6
  };
  var crumbs = [];
  var queue = [];
  var extra = {};
  var user = null;
  var account = null;
  var repeats = {}; // fingerprint of recent errors -> {at, fold}, to count tight loops
  var repeatKeys = 0;
  var timer = 0;
  var sending = null; // the promise of the request in flight
  var pausedUntil = 0; // no sending before this instant (backoff, Retry-After)
  var failures = 0;
  var memory = {}; // stand-in when sessionStorage is unavailable (sandboxed frames, privacy modes)

  function origin(src) {
    try {
      return new URL(src).origin;
    } catch (e) {
      return '';
    }
  }

  function absolute(url) {
    try {
      return new URL(url, win.location.href).href;
    } catch (e) {
      return String(url);
    }
  }

  function safe(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (e) {
        // the SDK swallows its own failures: the page comes first
      }
    };
  }

  function now() {
    return Date.now();
  }

  function uuid() {
    var c = win.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = (Math.random() * 256) | 0;
    b[6] = (b[6] & 15) | 64; // version 4
    b[8] = (b[8] & 63) | 128; // RFC 4122 variant
    var h = '';
    for (i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1) + ([3, 5, 7, 9].indexOf(i) >= 0 ? '-' : '');
    return h;
  }

  function store(key, value) {
    key = 'proliferate.' + key;
    try {
      if (value === undefined) return JSON.parse(win.sessionStorage.getItem(key));
      win.sessionStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      if (value === undefined) return memory[key];
      memory[key] = value;
    }
  }

  // The session lives in sessionStorage and is renewed after 30 minutes without activity
  // (clicks, keys, navigation, captured events); each call counts as activity.
  function sessionId() {
    var s = store('session');
    var t = now();
    if (!s || !s.id || t - s.at > SESSION_IDLE_MS) s = { id: uuid() };
    s.at = t;
    store('session', s);
    return s.id;
  }

  // Keeps the session alive on user activity; at most one storage write a second.
  var lastActivity = 0;
  function activity() {
    if (now() - lastActivity < 1000) return;
    lastActivity = now();
    sessionId();
  }

  function windowId() {
    var w = store('window');
    if (!w) store('window', (w = uuid()));
    return w;
  }

  function isIngest(url) {
    return absolute(url).indexOf(absolute(cfg.endpoint + '/api/v1/errors')) === 0;
  }

  // Full URL with credentials dropped and the values of secret-looking query parameters
  // (token, key, password, signature...) replaced, so breadcrumbs never carry them.
  function scrub(url) {
    try {
      var u = new URL(url, win.location.href);
      var q = u.search.slice(1).split('&').map(function (pair) {
        var k = pair.split('=')[0];
        return SECRET.test(decodeURIComponent(k)) ? k + '=[Filtered]' : pair;
      });
      var hash = SECRET.test(u.hash) && u.hash.indexOf('=') > 0 ? '#[Filtered]' : u.hash;
      return u.origin + u.pathname + (u.search ? '?' + q.join('&') : '') + hash;
    } catch (e) {
      return String(url).split(/[?#]/)[0];
    }
  }

  // JSON that survives what pages put in extra or breadcrumb data: cycles and BigInt. `stack`
  // holds the objects on the path to the value, so only a reference back to an ancestor counts
  // as a cycle (an object shared by two fields is written twice).
  function toJSON(value) {
    var stack = [];
    return JSON.stringify(value, function (k, v) {
      if (typeof v === 'bigint') return String(v);
      if (!stack.length) return stack.push(v), v;
      var i = stack.indexOf(this);
      if (i >= 0) stack.splice(i + 1);
      else stack.push(this);
      return v && typeof v === 'object' && stack.indexOf(v) >= 0 ? '[Circular]' : v;
    });
  }

  function text(value, max) {
    var s;
    if (typeof value === 'string') s = value;
    else if (value instanceof Error) s = value.name + ': ' + value.message;
    else {
      try {
        s = toJSON(value);
      } catch (e) {}
      if (typeof s !== 'string') s = String(value);
    }
    return s.length > max ? s.slice(0, max) + '…' : s;
  }

  function addBreadcrumb(crumb) {
    crumb = crumb || {};
    var c = {
      timestamp: typeof crumb.timestamp === 'number' ? crumb.timestamp : now(),
      category: String(crumb.category || 'custom'),
      message: text(crumb.message == null ? '' : crumb.message, 1000),
      level: LEVELS[crumb.level] ? crumb.level : 'info'
    };
    if (crumb.data) c.data = crumb.data;
    crumbs.push(c);
    while (crumbs.length > Math.max(0, cfg.maxBreadcrumbs)) crumbs.shift();
  }

  // ---- building and queueing events ----

  function describeError(err) {
    if (err instanceof Error || (err && typeof err === 'object' && 'stack' in err && 'message' in err)) {
      return {
        type: String(err.name || (err.constructor && err.constructor.name) || 'Error'),
        message: String(err.message),
        stack: String(err.stack || '')
      };
    }
    return null;
  }

  function capture(event, moreExtra) {
    if (!cfg.apiKey) return; // nothing leaves the page before init() (no key to send with)
    if (Math.random() >= cfg.sampleRate) return;
    var key = JSON.stringify([event.type, event.level, event.message, event.exception]);
    var seen = repeats[key];
    var t = now();
    var x = {};
    var k;
    if (seen && t - seen.at < REPEAT_MS && seen.fold && queue.indexOf(seen.fold) >= 0) {
      // A tight loop: the first occurrence went (or goes) out on its own; later ones fold into
      // one queued event that counts them in extra.repeat_count, checked before any other work.
      seen.at = t;
      seen.fold.extra = seen.fold.extra || {};
      seen.fold.extra.repeat_count = (seen.fold.extra.repeat_count || 0) + 1;
      return seen.fold.event_id;
    }
    for (k in extra) x[k] = extra[k];
    for (k in moreExtra || {}) x[k] = moreExtra[k];
    event.api_key = cfg.apiKey;
    event.event_id = uuid();
    event.timestamp = new Date(t).toISOString();
    event.environment = cfg.environment;
    event.release = cfg.release;
    event.url = scrub(win.location.href);
    event.user_agent = win.navigator.userAgent;
    event.user = user || undefined;
    event.account = account || undefined;
    event.session_id = sessionId();
    event.window_id = windowId();
    event.breadcrumbs = crumbs.slice();
    event.extra = x;
    if (seen && t - seen.at < REPEAT_MS) {
      x.repeat_count = 1; // opens the fold that the next repeats add to
    } else if (!seen) {
      if (++repeatKeys > 200) (repeats = {}), (repeatKeys = 1);
      seen = repeats[key] = {};
    }
    seen.at = t;
    if (cfg.beforeSend) {
      try {
        event = cfg.beforeSend(event);
      } catch (e) {
        // a broken hook must not cost the report: send the event as built
      }
      if (!event) return;
    }
    if (x.repeat_count) seen.fold = event;
    queue.push(event);
    if (queue.length > MAX_QUEUE) queue.shift();
    schedule(queue.length >= cfg.maxBatchEvents ? 0 : cfg.batchWindowMs);
    return event.event_id;
  }

  function captureException(err, options) {
    var exc = describeError(err);
    if (!exc) {
      exc = { type: 'Error', message: text(err, 1000), stack: '' };
    }
    return capture({ type: 'exception', level: 'error', exception: exc }, options && options.extra);
  }

  // ---- transport ----

  function schedule(delay) {
    delay = Math.max(delay, pausedUntil - now());
    if (timer && delay > 0) return;
    clearTimeout(timer);
    timer = setTimeout(function () {
      timer = 0;
      flush();
    }, delay);
  }

  // Takes the oldest events off the queue, as many as fit in one keepalive request.
  function takeBatch() {
    var parts = [];
    var taken = [];
    var size = 2;
    while (queue.length && parts.length < MAX_BATCH) {
      var json;
      try {
        json = toJSON(queue[0]);
      } catch (e) {
        queue.shift(); // cannot be serialised (a throwing getter): drop it, not the queue
        continue;
      }
      var n = utf8 ? utf8.encode(json).length : json.length * 3;
      if (parts.length && size + n + 1 > KEEPALIVE_BYTES) break;
      parts.push(json);
      size += n + 1;
      taken.push(queue.shift());
    }
    return { events: taken, body: '[' + parts.join(',') + ']', size: size };
  }

  function retryAfter(header) {
    var seconds = Number(header);
    if (header && !isNaN(seconds)) return seconds * 1000;
    var date = Date.parse(header);
    return isNaN(date) ? 60000 : date - now();
  }

  function sendOnce() {
    var batch = takeBatch();
    function putBack() {
      queue = batch.events.concat(queue).slice(-MAX_QUEUE);
    }
    return nativeFetch(cfg.endpoint + INGEST_PATH, {
      method: 'POST',
      body: batch.body,
      headers: { 'Content-Type': 'text/plain' }, // a simple request: no CORS preflight
      credentials: 'omit',
      keepalive: batch.size < KEEPALIVE_BYTES
    }).then(
      function (res) {
        if (res.status === 429) {
          putBack();
          pausedUntil = now() + retryAfter(res.headers.get('Retry-After'));
          return false;
        }
        if (res.status >= 500) throw new Error('server error');
        failures = 0; // delivered, or refused for good (4xx): retrying would not help
        return true;
      },
      function () {
        throw new Error('network error');
      }
    ).catch(function () {
      // Network errors and 5xx retry the whole batch with exponential backoff; the server
      // dedupes by event_id, so a batch that did arrive after all is harmless.
      putBack();
      failures++;
      pausedUntil = now() + Math.min(cfg.retryBaseMs * Math.pow(2, failures - 1), 60000);
      return false;
    });
  }

  function flush() {
    try {
      if (sending) return sending.then(flush);
      clearTimeout(timer);
      timer = 0;
      if (!queue.length) return Promise.resolve(true);
      if (!cfg.apiKey || !nativeFetch) return Promise.resolve(false);
      if (now() < pausedUntil) {
        // After maxRetries failures in a row only new events, flush() or pagehide try again.
        if (failures <= cfg.maxRetries) schedule(0);
        return Promise.resolve(false);
      }
      sending = sendOnce().then(function (ok) {
        sending = null;
        if (!ok) {
          if (failures <= cfg.maxRetries) schedule(0);
          return false;
        }
        return flush();
      });
      return sending;
    } catch (e) {
      return Promise.resolve(false);
    }
  }

  // The page is going away (or may be discarded while hidden): hand what is queued to the
  // browser with sendBeacon, which outlives the page. Events a beacon refuses stay queued.
  function beacon() {
    if (!cfg.apiKey || !win.navigator.sendBeacon) return;
    clearTimeout(timer);
    timer = 0;
    while (queue.length) {
      var batch = takeBatch();
      if (!batch.events.length) break;
      if (!win.navigator.sendBeacon(cfg.endpoint + INGEST_PATH, batch.body)) {
        queue = batch.events.concat(queue);
        break;
      }
    }
  }

  // ---- automatic capture ----

  function onError(e) {
    var exc = describeError(e.error);
    if (!exc) {
      if (!e.error && e.message === 'Script error.') return; // cross-origin script: nothing to tell
      var msg = e.error != null ? text(e.error, 1000) : String(e.message || 'Unknown error');
      exc = { type: 'Error', message: msg, stack: '' };
      // No stack from a thrown non-Error: keep the place the browser reported as one frame.
      if (e.filename) exc.stack = 'Error: ' + msg + '\n    at ' + e.filename + ':' + e.lineno + ':' + e.colno;
    }
    capture({ type: 'exception', level: 'error', exception: exc });
  }

  function onRejection(e) {
    var reason = e.reason;
    var exc = describeError(reason) || {
      type: 'UnhandledRejection',
      message: 'Non-Error promise rejection: ' + text(reason, 1000),
      stack: ''
    };
    capture({ type: 'exception', level: 'error', exception: exc });
  }

  function selector(el) {
    var parts = [];
    for (var depth = 0; el && el.nodeType === 1 && depth < 4; depth++) {
      var tag = el.tagName.toLowerCase();
      if (el.id) {
        parts.unshift(tag + '#' + el.id);
        break;
      }
      var cls = typeof el.className === 'string' ? el.className.trim().split(/\s+/).slice(0, 2) : [];
      var name = el.getAttribute('name');
      parts.unshift(tag + (cls[0] ? '.' + cls.join('.') : '') + (name ? '[name="' + name + '"]' : ''));
      if (tag === 'body') break;
      el = el.parentElement;
    }
    return parts.join(' > ');
  }

  function onClick(e) {
    var t = e.target;
    if (!t || t.nodeType !== 1) return;
    // Name what the user meant to click (the button, not the icon inside it).
    var el = t.closest('a,button,input,select,textarea,label,summary,[role=button],[onclick]') || t;
    var sel = selector(el);
    // Text of the element, never the value of a form field.
    var label = /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) ? '' : (el.textContent || '').replace(/\s+/g, ' ').trim();
    label = text(label, 80);
    activity();
    addBreadcrumb({
      category: 'click',
      message: 'Clicked ' + sel + (label ? ' "' + label + '"' : ''),
      data: { element: sel, text: label }
    });
  }

  var lastHref = win.location.href;
  function onNavigate() {
    var href = win.location.href;
    if (href === lastHref) return; // popstate and hashchange both fire for one hash change
    var from = scrub(lastHref);
    var to = scrub(href);
    lastHref = href;
    activity();
    addBreadcrumb({
      category: 'navigation',
      message: 'Navigated to ' + to.replace(win.location.origin, ''),
      data: { from: from, to: to }
    });
  }

  function wrap(obj, name, make) {
    var original = obj && obj[name];
    if (typeof original === 'function') obj[name] = make(original);
  }

  function httpCrumb(category, method, url, status, started) {
    var ms = now() - started;
    url = scrub(url);
    addBreadcrumb({
      category: category,
      message: method + ' ' + url + ' [' + (status || 'failed') + '] ' + ms + 'ms',
      level: !status || status >= 500 ? 'error' : status >= 400 ? 'warning' : 'info',
      data: { method: method, url: url, status_code: status, duration_ms: ms }
    });
  }

  function instrument() {
    win.addEventListener('error', safe(onError));
    win.addEventListener('unhandledrejection', safe(onRejection));
    doc.addEventListener('click', safe(onClick), true);
    doc.addEventListener('keydown', safe(activity), true);
    win.addEventListener('popstate', safe(onNavigate));
    win.addEventListener('hashchange', safe(onNavigate));
    win.addEventListener('pagehide', safe(beacon));
    doc.addEventListener('visibilitychange', safe(function () {
      if (doc.visibilityState === 'hidden') beacon();
    }));

    ['pushState', 'replaceState'].forEach(function (name) {
      wrap(win.history, name, function (original) {
        return function () {
          var result = original.apply(this, arguments);
          safe(onNavigate)();
          return result;
        };
      });
    });

    [['warn', 'warning'], ['error', 'error']].forEach(function (pair) {
      wrap(win.console, pair[0], function (original) {
        return function () {
          var args = arguments;
          safe(function () {
            addBreadcrumb({
              category: 'console',
              level: pair[1],
              message: [].map.call(args, function (a) { return text(a, 500); }).join(' ')
            });
          })();
          return original.apply(this, args);
        };
      });
    });

    wrap(win, 'fetch', function (original) {
      return function (input, init) {
        var started = now();
        var method;
        var url;
        safe(function () {
          url = absolute(input && typeof input === 'object' && 'url' in input ? input.url : input);
          method = String((init && init.method) || (input && input.method) || 'GET').toUpperCase();
        })();
        // Called on window, as the native fetch expects (an unbound call would be illegal).
        var promise = original.apply(win, arguments);
        if (!url || isIngest(url)) return promise;
        return promise.then(
          function (res) {
            safe(httpCrumb)('fetch', method, url, res.status, started);
            return res;
          },
          function (err) {
            safe(httpCrumb)('fetch', method, url, 0, started);
            throw err;
          }
        );
      };
    });

    var xhr = win.XMLHttpRequest && win.XMLHttpRequest.prototype;
    wrap(xhr, 'open', function (original) {
      return function (method, url) {
        var self = this;
        safe(function () {
          self.__proliferate = { method: String(method).toUpperCase(), url: absolute(url) };
        })();
        return original.apply(this, arguments);
      };
    });
    wrap(xhr, 'send', function (original) {
      return function () {
        var self = this;
        safe(function () {
          var info = self.__proliferate;
          if (!info || isIngest(info.url)) return;
          var started = now();
          self.addEventListener('loadend', safe(function () {
            httpCrumb('xhr', info.method, info.url, self.status, started);
          }));
        })();
        return original.apply(this, arguments);
      };
    });
  }

  // ---- public API ----

  win.Proliferate = {
    init: safe(function (options) {
      for (var k in options || {}) if (options[k] !== undefined) cfg[k] = options[k];
      cfg.endpoint = String(cfg.endpoint).replace(/\/+$/, '');
      cfg.sampleRate = Number(cfg.sampleRate);
      if (isNaN(cfg.sampleRate)) cfg.sampleRate = 1;
    }),
    captureException: safe(captureException),
    captureMessage: safe(function (message, level) {
      return capture({
        type: 'message',
        level: LEVELS[level] ? level : 'info',
        message: text(message, 8192)
      });
    }),
    setUser: safe(function (u) {
      user = u ? { id: u.id, email: u.email } : null;
    }),
    setAccount: safe(function (a) {
      account = a ? { id: a.id, name: a.name } : null;
    }),
    addBreadcrumb: safe(addBreadcrumb),
    setExtra: safe(function (key, value) {
      extra[key] = value;
    }),
    flush: function () {
      return flush();
    }
  };

  safe(instrument)();
})(typeof window !== 'undefined' ? window : null, typeof document !== 'undefined' ? document : null);
