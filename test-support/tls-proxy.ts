import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';

/**
 * A TLS listener in front of a plaintext broker, with a real certificate chain made by openssl:
 * a CA (`ca`) that signed a certificate for "localhost" (presented by the listener), and an
 * unrelated self-signed CA (`rogue`). Clients do their whole TLS handshake and chain check against
 * it; the Kafka requests behind it reach the real broker.
 */
export interface TlsProxy {
  port: number;
  /** PEM files: the CA that signed the listener's certificate, and one that did not. */
  ca: string;
  rogue: string;
  close(): Promise<void>;
}

export async function startTlsProxy(broker: string): Promise<TlsProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'agenttrace-tls-'));
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=agenttrace test CA']);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.pem', '-days', '2', '-subj', '/CN=someone else']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  const i = broker.lastIndexOf(':');
  const sockets = new Set<Socket>();
  const server = createServer({ key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) }, (tlsSock) => {
    const up = connect({ host: broker.slice(0, i), port: Number(broker.slice(i + 1)) });
    sockets.add(up);
    sockets.add(tlsSock);
    tlsSock.pipe(up).pipe(tlsSock);
    const close = () => {
      up.destroy();
      tlsSock.destroy();
    };
    for (const s of [up, tlsSock]) {
      s.on('error', close);
      s.on('close', close);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    ca: join(dir, 'ca.pem'),
    rogue: join(dir, 'rogue.pem'),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
