// Entry of the second build (esbuild bundle, then terser): adds analytics.
import { scenarios, runScenarios } from './app.js';
import { EventQueue } from './analytics.js';

function trackClicks(count) {
  const queue = new EventQueue(3);
  for (let i = 0; i < count; i++) {
    queue.track('click', { i });
  }
  return queue;
}

runScenarios(Object.assign({}, scenarios, {
  analytics() {
    return trackClicks(5);
  },
}));
