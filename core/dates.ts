// The one date parser of the domain: property values, group-rule matches and config checks all read
// dates through here, so a date that validates is a date the daemon can compare. UTC calendar
// arithmetic without Date objects (Howard Hinnant's civil-date algorithms), so the answer never
// depends on the host's time zone and years 0-99 are not mapped to 1900-1999 as Date.UTC would.

export const DAY_MS = 86_400_000;
/** The range of a JavaScript Date, in epoch milliseconds. */
export const MAX_EPOCH_MS = 8.64e15;

/** Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** Days since 1970-01-01 → proleptic Gregorian [year, month (1-12), day] (the inverse of daysFromCivil). */
export function civilFromDays(days: number): [number, number, number] {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

// ISO-8601 and Postgres text forms: date, optional time ("T" or space), optional fraction, optional zone
// ("Z", "+HH", "+HHMM", "+HH:MM", and Postgres' historical "+HH:MM:SS").
const DATE_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:(Z)|([+-])(\d{2})(?::?(\d{2})(?::?(\d{2}))?)?)?)?$/i;
const EPOCH_MS_RE = /^[+-]?\d+$/;

/**
 * A date in text (ISO-8601 or Postgres' output) as epoch ms, or null when it is not one or names a day
 * that does not exist ("2020-02-30"). A time without a zone is UTC. Fractions past milliseconds are
 * truncated, not rounded (Postgres' microseconds).
 */
export function parseDateText(text: string): number | null {
  const m = DATE_RE.exec(text);
  if (m === null) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const fraction = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, "0"));
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMs = 0;
  if (m[9] !== undefined) {
    const offsetHour = Number(m[10]);
    const offsetMinute = m[11] === undefined ? 0 : Number(m[11]);
    const offsetSecond = m[12] === undefined ? 0 : Number(m[12]);
    if (offsetHour > 23 || offsetMinute > 59 || offsetSecond > 59) return null;
    offsetMs = (offsetHour * 3600 + offsetMinute * 60 + offsetSecond) * 1000 * (m[9] === "-" ? -1 : 1);
  }
  // A local time east of UTC is earlier in UTC.
  return daysFromCivil(year, month, day) * DAY_MS + ((hour * 60 + minute) * 60 + second) * 1000 + fraction - offsetMs;
}

/**
 * A date given in config (a group rule's match): epoch milliseconds as a safe integer or its digits, or
 * a text date (parseDateText); null when it is neither or lies outside a Date's range.
 */
export function parseDateMatch(match: string | number | boolean): number | null {
  let ms: number | null = null;
  if (typeof match === "number") ms = Number.isSafeInteger(match) ? match : null;
  else if (typeof match === "string") {
    const text = match.trim();
    if (EPOCH_MS_RE.test(text)) {
      const n = Number(text);
      ms = Number.isSafeInteger(n) ? n : null;
    } else ms = parseDateText(text);
  }
  return ms !== null && Math.abs(ms) <= MAX_EPOCH_MS ? ms : null;
}
