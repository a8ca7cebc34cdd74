// errors.ts — what an attachment transfer can end with, apart from the code that transfers
// (lazy.ts), so the UI can tell them apart before that code is loaded.

/** The upload was cancelled (the PUT aborted and the attachment deleted). */
export class Cancelled extends Error {
  constructor() {
    super("cancelled");
    this.name = "Cancelled";
  }
}

/** The server says the attachment is gone (TTL passed, deleted): show "expired". */
export class Expired extends Error {
  constructor() {
    super("expired");
    this.name = "Expired";
  }
}

/** The downloaded ciphertext does not match the hash in the message: discarded. */
export class HashMismatch extends Error {
  constructor() {
    super("the attachment's hash does not match");
    this.name = "HashMismatch";
  }
}
