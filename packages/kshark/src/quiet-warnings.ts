/**
 * The AWS SDK warns on every run that its future versions will need a newer Node. A kshark user
 * cannot act on that and it would bury kshark's own output on stderr, so it is switched off
 * through the SDK's own setting (unless the user set it). Imported first by cli.ts.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
