/**
 * The AWS SDK warns on every run on Node 20 that future releases will need Node 22. A kdiff user
 * cannot act on it and it would land in the middle of kdiff's own stderr, so the SDK's documented
 * switch turns it off unless the user set it. Imported first by cli.ts, before the SDK loads.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
