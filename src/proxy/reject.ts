/**
 * Refusing a channel open with a reason the client prints
 * ("channel 0: open failed: administratively prohibited: …"). The two-argument reject comes from
 * our ssh2 patch; @types/ssh2 still describes it as reject().
 */
export const OPEN_FAILURE = { ADMINISTRATIVELY_PROHIBITED: 1, CONNECT_FAILED: 2, UNKNOWN_CHANNEL_TYPE: 3 } as const;

export function rejectWith(reject: () => void, code: number, description: string): void {
  (reject as unknown as (code: number, description: string) => void)(code, description);
}
