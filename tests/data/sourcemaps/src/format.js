// Price formatting; a missing price fails inside toFixed's receiver lookup.
const SYMBOLS = { EUR: '\u20ac', USD: '$', GBP: '\u00a3' };

export function formatPrice(price, currency) {
  const symbol = SYMBOLS[currency] || currency + ' ';
  const amount = price.amount.toFixed(2);
  return symbol + amount;
}

export function formatReceipt(cart) {
  const lines = cart.summary();
  return lines.join('\n') + '\n';
}
