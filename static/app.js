/* Proliferate issue browser: small enhancements only. Every page works without this file:
 * filters have an Apply button, bulk actions are plain form buttons, the frames toggle and the
 * chart range are links. Loaded from /static (CSP: script-src 'self'), no inline handlers. */
(function () {
  'use strict';

  function all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

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

  // A second thought before revoking or removing.
  all('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.getAttribute('data-confirm'))) event.preventDefault();
    });
  });

  // "/" focuses the search box, as on most trackers.
  var search = document.querySelector('[data-search]');
  if (search) {
    document.addEventListener('keydown', function (event) {
      var tag = (event.target && event.target.tagName) || '';
      if (event.key === '/' && !/^(INPUT|TEXTAREA|SELECT)$/.test(tag) && !event.metaKey && !event.ctrlKey) {
        event.preventDefault();
        search.focus();
        search.select();
      }
    });
  }
})();
