// Runs s3rver, an S3-API server, on loopback for the local stack, with the agenttrace bucket.
import S3rver from 's3rver';

const port = Number(process.env.AGENTTRACE_S3_PORT ?? 4568);
const bucket = process.env.AGENTTRACE_S3_BUCKET ?? 'agenttrace';
const directory = process.env.AGENTTRACE_S3_DIR ?? '.stack/data/s3';

const server = new S3rver({
  address: '127.0.0.1',
  port,
  silent: true,
  directory,
  configureBuckets: [{ name: bucket }],
  allowMismatchedSignatures: false,
});
await server.run();
process.stdout.write(`s3 ready on 127.0.0.1:${port} bucket ${bucket}\n`);
const stop = () => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
