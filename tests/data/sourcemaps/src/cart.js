// A shopping cart: the checkout path throws from a validator two calls deep.
import { formatPrice } from './format.js';

export class Cart {
  constructor(currency) {
    this.currency = currency;
    this.items = [];
  }

  add(sku, quantity, price) {
    validateQuantity(sku, quantity);
    this.items.push({ sku, quantity, price });
    return this;
  }

  total() {
    return this.items.reduce((sum, item) => sum + item.quantity * item.price, 0);
  }

  summary() {
    return this.items.map((item) => item.sku + ' ' + formatPrice(item.price, this.currency));
  }
}

export function validateQuantity(sku, quantity) {
  if (!Number.isInteger(quantity) || quantity <= 0) {
    throw new RangeError('quantity for ' + sku + ' must be a positive integer, got ' + quantity);
  }
}

export function checkout(lines) {
  const cart = new Cart('EUR');
  for (const line of lines) {
    cart.add(line.sku, line.quantity, line.price);
  }
  return cart.total();
}
