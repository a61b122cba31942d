/**
 * Channel options by name or pattern: the first rule whose `match` fits the
 * channel wins; its missing fields come from the defaults. Results are cached
 * per channel name (bounded), since every command looks them up.
 */
import { type ChannelOptions, type ChannelRule, DEFAULT_CHANNEL_OPTIONS } from './options.js';

const CACHE_LIMIT = 10_000;

export class ChannelRules {
  private readonly rules: { test: (channel: string) => boolean; options: ChannelOptions }[];
  private readonly cache = new Map<string, ChannelOptions>();

  constructor(rules: readonly ChannelRule[] = []) {
    this.rules = rules.map((rule) => ({ test: matcher(rule.match), options: resolve(rule) }));
  }

  /** The options of `channel`. */
  get(channel: string): ChannelOptions {
    let options = this.cache.get(channel);
    if (options !== undefined) return options;
    options = this.rules.find((r) => r.test(channel))?.options ?? DEFAULT_CHANNEL_OPTIONS;
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(channel, options);
    return options;
  }
}

function resolve(rule: ChannelRule): ChannelOptions {
  const history = { ...DEFAULT_CHANNEL_OPTIONS.history, ...rule.history };
  if (!Number.isSafeInteger(history.size) || history.size < 0) throw new RangeError('history.size must be a non-negative integer');
  if (!(history.ttl >= 0)) throw new RangeError('history.ttl must be a non-negative number of ms');
  return {
    history,
    presence: rule.presence ?? DEFAULT_CHANNEL_OPTIONS.presence,
    publish: rule.publish ?? DEFAULT_CHANNEL_OPTIONS.publish,
  };
}

/** Exact name, `*` wildcard pattern, RegExp or predicate. */
export function matcher(match: ChannelRule['match']): (channel: string) => boolean {
  if (typeof match === 'function') return match;
  if (match instanceof RegExp) return (channel) => match.test(channel);
  if (!match.includes('*')) return (channel) => channel === match;
  const re = new RegExp(`^${match.split('*').map(escape).join('.*')}$`, 's');
  return (channel) => re.test(channel);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
