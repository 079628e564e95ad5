import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, parseIsoTime, parseListen, parseSize } from '../../../src/shared/units.js';

describe('units', () => {
  it.each([
    ['30s', 30_000], ['10m', 600_000], ['12h', 43_200_000], ['0s', 0], ['1h30m', 5_400_000], ['250ms', 250], ['7d', 604_800_000],
  ])('duration %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(['30', '10 m', 'm', '-1s', '1.5h', '', '10x'])('not a duration: %j', (text) => {
    expect(parseDuration(text)).toBeNull();
  });
  it('formats durations', () => {
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(0)).toBe('0s');
  });
  it('parses sizes', () => {
    expect(parseSize('64MiB')).toBe(67_108_864);
    expect(parseSize('1GiB')).toBe(1_073_741_824);
    expect(parseSize('500MB')).toBe(500_000_000);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('lots')).toBeNull();
  });
  it('parses listen addresses', () => {
    expect(parseListen('0.0.0.0:2222')).toEqual({ host: '0.0.0.0', port: 2222 });
    expect(parseListen('[::1]:22')).toEqual({ host: '::1', port: 22 });
    expect(parseListen('localhost:8080')).toEqual({ host: 'localhost', port: 8080 });
    for (const bad of ['0.0.0.0', ':22', 'host:0', 'host:65536', '::1:22', 'a b:22']) expect(parseListen(bad)).toBeNull();
  });
  it('parses ISO times and refuses loose dates', () => {
    expect(parseIsoTime('2026-12-31T18:00:00Z', 'x')).toBe(Date.UTC(2026, 11, 31, 18));
    expect(() => parseIsoTime('next tuesday', '--until')).toThrow(/--until.*ISO-8601/);
    expect(() => parseIsoTime('2026-13-45', '--until')).toThrow(/not a valid date/);
  });
});
