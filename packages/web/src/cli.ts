#!/usr/bin/env node
import { Command } from 'commander';
import { addSettingsOptions, runCli, sanitizeForTerminal, SETTINGS_HELP, settingsFromFlags } from '@agenttrace/common';
import { EXIT_CODES_HELP, exitCodeFor } from './errors.js';
import { webSettings, WEB_DEFAULTS } from './options.js';
import { WebServer } from './server.js';

interface Flags {
  host?: string;
  port?: string;
  config?: string;
  [k: string]: unknown;
}

function program(run: (flags: Flags) => Promise<void>): Command {
  const p = new Command('agenttrace-web')
    .description('Web view of agent sessions: sessions list, a session\'s waterfall, compare, live sessions and alerts.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .option('--host <address>', `address to bind (default ${WEB_DEFAULTS.host}; anything but loopback needs AGENTTRACE_WEB_TOKEN)`)
    .option('--port <n>', `port to listen on (default ${WEB_DEFAULTS.port}; 0 picks a free one)`);
  addSettingsOptions(p);
  p.addHelpText(
    'after',
    `
Reads sessions through the same reader as kshark: the dashboard consumer's Redis timeline, else the
session's Kafka partition, else the Parquet archive. Live pages need the dashboard consumer.

Server settings (precedence: flag > environment > config file > default):
  --host   AGENTTRACE_WEB_HOST    config "web.host"   default ${WEB_DEFAULTS.host}
  --port   AGENTTRACE_WEB_PORT    config "web.port"   default ${WEB_DEFAULTS.port}
  token    AGENTTRACE_WEB_TOKEN   config "web.token"  required when --host is not loopback (never a flag)

Examples:
  agenttrace-web
  agenttrace-web --port 8080 --topic agent-events
  AGENTTRACE_WEB_TOKEN=$(openssl rand -hex 16) agenttrace-web --host 0.0.0.0
  open http://127.0.0.1:9470/#/session/sess_a1b2c3

${EXIT_CODES_HELP}

${SETTINGS_HELP}`,
  );
  p.action(async (flags: Flags) => run(flags));
  return p;
}

async function serve(flags: Flags): Promise<void> {
  const settings = settingsFromFlags(flags);
  const server = new WebServer(settings, webSettings({ host: flags.host, port: flags.port, config: flags.config }));
  const url = await server.start();
  process.stdout.write(`agenttrace-web listening on ${url}/ (topic ${sanitizeForTerminal(settings.topic, { singleLine: true })})\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
}

await runCli(program(serve), { name: 'agenttrace-web', exitCodeFor });
