/** The compute paths a run may ask for (`auto`: the fastest available; see backend.ts). */
export const BACKEND_PREFERENCES = ['auto', 'tensorflow', 'native', 'wasm', 'cpu'] as const;
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number];
