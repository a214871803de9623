// The dead-letter rules live in @agenttrace/common's DeadLetterWriter; re-exported for the archiver's public API.
export { nextDlqValueLength } from '@agenttrace/common';
