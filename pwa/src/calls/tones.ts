// tones.ts — the ringtone (incoming call) and the ringback tone (our call is ringing), made with
// WebAudio oscillators: no sound files. A browser may keep the AudioContext suspended until the
// person has interacted with the page; then it stays silent and the screen alone tells.

export type Tone = "ringtone" | "ringback";

interface Pattern {
  /** Frequencies played together, Hz. */
  freqs: number[];
  /** [on, off] seconds, repeated within one period. */
  bursts: Array<[number, number]>;
  /** Seconds from one period's start to the next. */
  period: number;
  gain: number;
}

const PATTERNS: Record<Tone, Pattern> = {
  // A two-tone trill, twice, every 3 s.
  ringtone: { freqs: [660, 880], bursts: [[0.4, 0.2], [0.4, 0]], period: 3, gain: 0.12 },
  // The European ringback: 425 Hz, 1 s on, 4 s off.
  ringback: { freqs: [425], bursts: [[1, 0]], period: 5, gain: 0.06 },
};

export class TonePlayer {
  private ctx: AudioContext | null = null;
  private timer: ReturnType<typeof setInterval> | undefined;
  private playing: Tone | null = null;

  play(tone: Tone): void {
    if (this.playing === tone) return;
    this.stop();
    if (typeof AudioContext === "undefined") return;
    this.playing = tone;
    const ctx = new AudioContext();
    this.ctx = ctx;
    void ctx.resume().catch(() => undefined);
    const pattern = PATTERNS[tone];
    const schedule = () => {
      let at = ctx.currentTime + 0.05;
      for (const [on, off] of pattern.bursts) {
        const gain = ctx.createGain();
        gain.gain.setValueAtTime(0, at);
        gain.gain.linearRampToValueAtTime(pattern.gain, at + 0.02);
        gain.gain.setValueAtTime(pattern.gain, at + on - 0.02);
        gain.gain.linearRampToValueAtTime(0, at + on);
        gain.connect(ctx.destination);
        for (const f of pattern.freqs) {
          const osc = ctx.createOscillator();
          osc.type = "sine";
          osc.frequency.value = f;
          osc.connect(gain);
          osc.start(at);
          osc.stop(at + on);
        }
        at += on + off;
      }
    };
    schedule();
    this.timer = setInterval(schedule, pattern.period * 1000);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.playing = null;
    void this.ctx?.close().catch(() => undefined);
    this.ctx = null;
  }
}
