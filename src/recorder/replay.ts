import fs from 'node:fs';

/**
 * Terminal replay of an asciicast v2 file with its real timing: pauses longer than `idleCap`
 * seconds are shortened to it, and `speed` divides every pause. Only output ("o") is written;
 * markers are shown as a dim line between events when `showMarkers` is set.
 */
export interface ReplayOptions {
  speed: number;
  idleCap: number;
  write: (s: string) => void;
  sleep?: (ms: number) => Promise<void>;
  showMarkers?: boolean;
}

export async function replayCast(file: string, o: ReplayOptions): Promise<{ events: number }> {
  return replayCastData(fs.readFileSync(file), o);
}

/** The same from the recording's bytes (as RecordingStorage.read gives them). */
export async function replayCastData(data: Buffer, o: ReplayOptions): Promise<{ events: number }> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const lines = data.toString('utf8').split('\n');
  let last = 0;
  let events = 0;
  for (const line of lines.slice(1)) {
    if (!line.startsWith('[')) continue;
    const [t, code, data] = JSON.parse(line) as [number, string, string];
    const pause = Math.min(Math.max(0, t - last), o.idleCap) / o.speed;
    last = t;
    if (pause > 0.001) await sleep(pause * 1000);
    if (code === 'o') o.write(data);
    else if (code === 'm' && o.showMarkers) o.write(`\r\n\x1b[2m-- ${data} --\x1b[0m\r\n`);
    events++;
  }
  return { events };
}
