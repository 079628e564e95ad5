import { describe, expect, it } from 'vitest';
import { oneLine, terminalSafe, terminalSafeJson } from '../../../src/cli/escape.js';

describe('terminal escaping', () => {
  it('makes C0, DEL, C1 and bidi controls visible, and keeps ordinary text', () => {
    expect(oneLine('a\u001b[2Kb\u0007c\r\n\t\u007f\u0085\u009b\u202e\u2066\u200fé✓')).toBe('a\\x1b[2Kb\\x07c\\x0d\\x0a\\x09\\x7f\\x85\\x9b\\u{202e}\\u{2066}\\u{200f}é✓');
    expect(oneLine('web1 deploy@10.0.0.5 "quoted"')).toBe('web1 deploy@10.0.0.5 "quoted"');
  });

  it('a block keeps its newlines and tabs', () => {
    expect(terminalSafe('one\ttwo\nthree\u001b]0;title\u0007\r')).toBe('one\ttwo\nthree\\x1b]0;title\\x07\\x0d');
  });

  it('JSON stays the same value and carries no raw control', () => {
    const value = { user: '\u001b[2K\u007f\u009b\u202e\u2028x', n: 1 };
    const text = terminalSafeJson(value);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u202e]/u);
    expect(JSON.parse(text)).toEqual(value);
  });
});
