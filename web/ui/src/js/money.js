// Money and a hosted account's standing as the pages show them (billing/account.json).

/** Pence as pounds: 150 → "£1.50", -40 → "−£0.40". */
export function pounds(pence) {
  const n = Math.round(Number(pence) || 0);
  const sign = n < 0 ? '−' : '';
  const p = Math.abs(n);
  return `${sign}£${Math.floor(p / 100)}.${String(p % 100).padStart(2, '0')}`;
}

/** What a banner says about `account`, or null when all is well. */
export function standingNotice(account) {
  const s = account?.standing;
  if (!s) return null;
  switch (s.state) {
    case 'low':
      return { kind: 'warn', text: `Your balance (${pounds(account.balance_pence)}) lasts about ${s.runway_days} more day${s.runway_days === 1 ? '' : 's'}. Top up to keep your data flowing.` };
    case 'grace':
      return { kind: 'warn', text: `Your balance is used up (${pounds(account.balance_pence)}). Posting keeps working until ${s.until}; top up before then.` };
    case 'suspended':
      return { kind: 'error', text: `Your balance is used up (${pounds(account.balance_pence)}): new data is refused until you top up. Your data is safe and can still be read and exported.` };
    default:
      return null;
  }
}
