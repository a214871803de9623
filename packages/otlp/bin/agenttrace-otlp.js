#!/usr/bin/env node
// A committed entry point: npm links a bin only when its file exists at install time, which
// dist/ (built after install) does not.
//
// On Node 20 the AWS SDK prints a notice on every run that its releases from 2027 on need Node 22
// (serve offloads to S3, export and forward fetch offloaded fields back): news about the SDK's
// future, not about this run. The program (never the libraries it is built from) turns it off with
// the SDK's documented switch unless the user set it; on Node 22 and later this does nothing.
if (Number(process.versions.node.split('.')[0]) < 22) process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// Imported after the line above (a static import would run first).
await import('../dist/cli.js');
