/** How far a long maintenance step is, counted in things (generations read, packs read): verify, gc, prune. */
export interface CountProgress {
  /** What is being done, e.g. "reading packs". */
  readonly step: string;
  /** What is counted, e.g. "packs". */
  readonly unit: string;
  readonly done: number;
  readonly total: number;
}

export type OnCountProgress = (p: CountProgress) => void;
