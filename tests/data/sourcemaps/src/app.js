// The scenarios both builds run; each throws, and runScenarios prints the stacks as JSON.
import { Cart, checkout } from './cart.js';
import { formatReceipt } from './format.js';
import { loadSettings } from './settings.js';

export const scenarios = {
  checkout() {
    return checkout([
      { sku: 'apple', quantity: 2, price: 3 },
      { sku: 'pear', quantity: 0, price: 4 },
    ]);
  },
  receipt() {
    const cart = new Cart('EUR').add('plum', 1, { cents: 120 });
    return formatReceipt(cart);
  },
  settings() {
    return loadSettings('{"theme": "dark",');
  },
};

export function runScenarios(all) {
  const stacks = {};
  for (const name of Object.keys(all)) {
    try {
      all[name]();
      stacks[name] = null;
    } catch (error) {
      stacks[name] = error.stack;
    }
  }
  console.log(JSON.stringify(stacks, null, 2));
}
