// Only in the second build: an event queue whose flush reads a field of a missing batch.
export class EventQueue {
  constructor(limit) {
    this.limit = limit;
    this.events = [];
  }

  track(name, props) {
    this.events.push({ name, props, at: 0 });
    if (this.events.length >= this.limit) {
      this.flush();
    }
  }

  flush() {
    const batch = this.events.splice(0, this.limit);
    return sendBatch(batch[this.limit]);
  }
}

function sendBatch(batch) {
  return batch.events.length;
}
