/**
 * The AWS SDK prints a Node-version notice on every run; it says nothing about the demo, so it is
 * switched off through the SDK's own setting. Imported before anything that loads the SDK.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
