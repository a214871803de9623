/** The shared connection flags, declared once (#15), and the commander adapter of the shared parsers. */
import { Command, CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { SETTINGS_HELP, SETTINGS_OPTIONS, addSettingsOptions, countFlag, durationFlag, flagParser, settingsFromFlags, settingsHelp } from '../src/index.js';

/** A commander program that throws instead of exiting and keeps what it would print. */
function program(): { cmd: Command; err: string[] } {
  const err: string[] = [];
  const cmd = new Command('t').exitOverride().configureOutput({ writeErr: (s) => err.push(s), writeOut: () => undefined });
  return { cmd, err };
}

describe('addSettingsOptions', () => {
  it('declares every shared flag, and a command parses them into the names settingsFromFlags reads', () => {
    const { cmd } = program();
    addSettingsOptions(cmd).parse(['--brokers', 'k1:9092,k2:9092', '--topic', 't1', '--redis-prefix', 'p:', '--s3-bucket', 'b'], { from: 'user' });
    expect(cmd.options.map((o) => o.flags)).toEqual(SETTINGS_OPTIONS.map(([f]) => f));
    const s = settingsFromFlags(cmd.opts(), {});
    expect(s.kafka.brokers).toEqual(['k1:9092', 'k2:9092']);
    expect(s.topic).toBe('t1');
    expect(s.redisPrefix).toBe('p:');
    expect(s.s3.bucket).toBe('b');
  });

  it('takes a subset in the shared order and a command\'s own wording', () => {
    const { cmd, err } = program();
    addSettingsOptions(cmd, { only: ['config', 'brokers'], describe: { config: 'JSON config file; settings under "x"' } });
    expect(cmd.options.map((o) => [o.flags, o.description])).toEqual([
      ['--brokers <list>', 'Kafka bootstrap servers, comma-separated'],
      ['--config <file>', 'JSON config file; settings under "x"'],
    ]);
    expect(() => cmd.parse(['--redis-url', 'redis://x'], { from: 'user' })).toThrow(CommanderError);
    expect(err.join('')).toMatch(/unknown option '--redis-url'/);
    expect(() => addSettingsOptions(program().cmd, { only: ['nope' as 'topic'] })).toThrow('not a shared flag: nope');
  });

  it('settingsHelp lists the chosen flags; all of them is SETTINGS_HELP, the table the commands printed before', () => {
    expect(SETTINGS_HELP).toBe(`Connection settings (precedence: flag > environment > config file > default):
  --brokers       AGENTTRACE_BROKERS        config "brokers"      default 127.0.0.1:9092
  --topic         AGENTTRACE_TOPIC          config "topic"        default agent-events
  --redis-url     AGENTTRACE_REDIS_URL      config "redisUrl"     default redis://127.0.0.1:6379
  --redis-prefix  AGENTTRACE_REDIS_PREFIX   config "redisPrefix"  default agenttrace:
  --s3-endpoint   AGENTTRACE_S3_ENDPOINT    config "s3.endpoint"  default AWS
  --s3-bucket     AGENTTRACE_S3_BUCKET      config "s3.bucket"    default agenttrace
  --s3-prefix     AGENTTRACE_S3_PREFIX      config "s3.prefix"    default none
  --config        AGENTTRACE_CONFIG         a JSON file with the fields above
  Kafka TLS/SASL: AGENTTRACE_KAFKA_SECURITY_PROTOCOL, AGENTTRACE_KAFKA_SASL_*, AGENTTRACE_KAFKA_SSL_* (never printed).`);
    const archiver = settingsHelp({ only: ['brokers', 'topic', 's3Bucket', 'config'] });
    expect(archiver).toContain('--s3-bucket');
    expect(archiver).not.toContain('--redis-url');
    expect(archiver).toContain('Kafka TLS/SASL');
    expect(settingsHelp({ only: ['config'] })).not.toContain('Kafka TLS/SASL');
  });
});

describe('flagParser', () => {
  it('turns a parser\'s error into commander\'s usage error with the same message', () => {
    const { cmd, err } = program();
    cmd.option('--roll-age <duration>', 'x', durationFlag('--roll-age')).option('--port <n>', 'x', countFlag('--port', { zero: true, max: 65535 }));
    cmd.parse(['--roll-age', '1.5m', '--port', '0'], { from: 'user' });
    expect(cmd.opts()).toEqual({ rollAge: 90_000, port: 0 });
    let thrown: unknown;
    try {
      cmd.parse(['--roll-age', '0'], { from: 'user' });
    } catch (e) {
      thrown = e;
    }
    // commander's own invalid-argument error (exit 1, which the commands map to 2), not the parser's exception.
    expect(thrown).toBeInstanceOf(CommanderError);
    expect((thrown as CommanderError).code).toBe('commander.invalidArgument');
    expect(err.join('')).toContain("error: option '--roll-age <duration>' argument '0' is invalid. --roll-age must be more than 0, got \"0\"");
    expect(() => cmd.parse(['--port', '70000'], { from: 'user' })).toThrow(CommanderError);
    expect(err.join('')).toContain('--port must be a whole number from 0 to 65535');
  });

  it('wraps any parse function, keeping the original error as cause', () => {
    const p = flagParser((v) => {
      if (v !== 'on') throw new RangeError(`must be "on", got "${v}"`);
      return true;
    });
    expect(p('on')).toBe(true);
    expect(() => p('off')).toThrow(expect.objectContaining({ code: 'commander.invalidArgument', message: 'must be "on", got "off"', cause: expect.any(RangeError) }) as Error);
  });
});
