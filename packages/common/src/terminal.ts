/**
 * Agent content is untrusted: a tool output can carry ANSI escape sequences that rewrite the
 * terminal, hide lines or set the window title, and bidi overrides that reorder what is shown.
 * Every string taken from an event passes through here before it is printed.
 */
// C0 controls except tab and newline, DEL, C1 controls, and the bidi/zero-width format characters.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

function visible(ch: string): string {
  const code = ch.codePointAt(0)!;
  if (code === 0x1b) return '\\e';
  if (code === 0x0d) return '\\r';
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** Replaces control, escape and bidi-override characters with visible escapes. Keeps \n and \t unless `singleLine`. */
export function sanitizeForTerminal(text: string, options: { singleLine?: boolean } = {}): string {
  let out = text.replace(CONTROL, visible);
  if (options.singleLine) out = out.replace(/\n/g, '\\n').replace(/\t/g, ' ');
  return out;
}

/** True when the text holds anything sanitizeForTerminal would rewrite. */
export function hasControlCharacters(text: string): boolean {
  CONTROL.lastIndex = 0;
  const found = CONTROL.test(text);
  CONTROL.lastIndex = 0;
  return found;
}
