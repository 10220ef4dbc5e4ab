import { describe, expect, it } from 'vitest';
import { ChatState } from '../../renderer/src/lib/state/chat.svelte';
import { ComparisonsState } from '../../renderer/src/lib/state/comparisons.svelte';
import { comparisonMarkdown, turnsOf } from '../../renderer/src/lib/comparison';
import type { CommandArgs, SavedComparison } from '../../preload/contract';
import { appError, deferred, fakeApi, type FakeApi } from './fake-api';

/** A fake engine that streams a reply naming the set-up it was given, token by token, through chat.token. */
function streamingApi(): FakeApi {
  const api: FakeApi = fakeApi({
    'chat.load': ({ modelId }) => ({ modelId, chatTemplate: '{{ messages }}' }),
    'chat.generate': (args: CommandArgs<'chat.generate'>) => {
      const who = args.mix.adapters.map((a) => `${a.versionId}@${a.scale}`).join('+') || 'base';
      const tokens = [`[${who}]`, ' turn', ` ${args.messages.filter((m) => m.role === 'user').length}`];
      for (const [i, text] of tokens.entries()) api.emit('chat.token', { requestId: args.requestId, text, tokenId: i });
      return { text: tokens.join(''), tokens: tokens.length, tokensPerSecond: 30 };
    },
  });
  return api;
}

describe('ChatState', () => {
  it('asks every set-up the same prompt with the same seed, one after another, each with its own history', async () => {
    const api = streamingApi();
    const chat = new ChatState(api);
    await chat.load('m1');
    expect(chat.chatTemplate).toBe('{{ messages }}');
    chat.addSetup([{ versionId: 'v1', scale: 1 }]);
    chat.addSetup();
    chat.addAdapter(chat.setups[2]!.id, 'v1');
    chat.addAdapter(chat.setups[2]!.id, 'v2');
    chat.setScale(chat.setups[2]!.id, 'v2', 0.5);
    chat.addSetup();
    expect(chat.setups).toHaveLength(3);

    await chat.send('Hello');
    await chat.send('Again');
    const calls = api.callsOf('chat.generate');
    expect(calls).toHaveLength(6);
    expect(new Set(calls.map((c) => c.sampling.seed)).size).toBe(1);
    expect(calls.map((c) => c.mix.adapters)).toEqual([
      [], [{ versionId: 'v1', scale: 1 }], [{ versionId: 'v1', scale: 1 }, { versionId: 'v2', scale: 0.5 }],
      [], [{ versionId: 'v1', scale: 1 }], [{ versionId: 'v1', scale: 1 }, { versionId: 'v2', scale: 0.5 }],
    ]);
    // The second turn of set-up 2 sees its own first reply, not another set-up's.
    expect(calls[4]?.messages).toEqual([
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: '[v1@1] turn 1' },
      { role: 'user', content: 'Again' },
    ]);
    const replies = chat.turns[1]!.replies;
    expect(Object.values(replies).map((r) => r.text)).toEqual(['[base] turn 2', '[v1@1] turn 2', '[v1@1+v2@0.5] turn 2']);
    expect(Object.values(replies).every((r) => r.done && r.tokens === 3)).toBe(true);
  });

  it('streams tokens into the reply as they arrive, ignoring other requests', async () => {
    const gate = deferred<{ text: string; tokens: number; tokensPerSecond: number }>();
    let requestId = '';
    const api = fakeApi({
      'chat.load': ({ modelId }) => ({ modelId, chatTemplate: null }),
      'chat.generate': (args) => { requestId = args.requestId; return gate.promise; },
    });
    const chat = new ChatState(api);
    await chat.load('m1');
    const sending = chat.send('Hi');
    await Promise.resolve();
    expect(chat.generating).toBe(true);
    api.emit('chat.token', { requestId, text: 'Ahoy', tokenId: 1 });
    api.emit('chat.token', { requestId: 'someone-else', text: 'XX', tokenId: 2 });
    api.emit('chat.token', { requestId, text: '!', tokenId: 3 });
    const reply = Object.values(chat.turns[0]!.replies)[0]!;
    expect(reply.text).toBe('Ahoy!');
    expect(reply.done).toBe(false);
    gate.resolve({ text: 'Ahoy!', tokens: 2, tokensPerSecond: 10 });
    await sending;
    expect(chat.generating).toBe(false);
    expect(reply.done).toBe(true);
  });

  it('stop sends chat.stop for the running request and skips the set-ups still waiting', async () => {
    const gate = deferred<{ text: string; tokens: number; tokensPerSecond: number }>();
    const api = fakeApi({
      'chat.load': ({ modelId }) => ({ modelId, chatTemplate: null }),
      'chat.generate': () => gate.promise,
      'chat.stop': () => { gate.resolve({ text: 'partial', tokens: 1, tokensPerSecond: 5 }); return { stopped: true }; },
    });
    const chat = new ChatState(api);
    await chat.load('m1');
    chat.addSetup([{ versionId: 'v1', scale: 1 }]);
    const sending = chat.send('Hi');
    await Promise.resolve();
    await chat.stop();
    await sending;
    expect(api.callsOf('chat.generate')).toHaveLength(1);
    expect(api.callsOf('chat.stop')).toHaveLength(1);
    const [first, second] = Object.values(chat.turns[0]!.replies);
    expect(first).toMatchObject({ text: 'partial', stopped: true, done: true });
    expect(second).toMatchObject({ text: '', stopped: true, done: true });
  });

  it('refuses to send without a model, keeps at most three set-ups, and saves the comparison with its labels', async () => {
    const api = streamingApi();
    const chat = new ChatState(api, (adapters) => (adapters.length ? `adapter ${adapters.map((a) => a.versionId).join('+')}` : 'base'));
    await chat.send('Hi');
    expect(chat.error).toBe('Load a base model first.');
    await chat.load('m1');
    for (let i = 0; i < 5; i++) chat.addSetup();
    expect(chat.setups).toHaveLength(3);
    chat.removeSetup(chat.setups[2]!.id);
    chat.setAdapters(chat.setups[1]!.id, [{ versionId: 'v7', scale: 1.5 }]);
    chat.systemPrompt = 'Be brief.';
    await chat.send('Say hi');
    // A set-up changed after its answer: the earlier answer keeps the label of the set-up that produced it.
    chat.setAdapters(chat.setups[0]!.id, [{ versionId: 'v9', scale: 1 }]);
    expect(Object.values(chat.turns[0]!.replies).map((r) => r.label)).toEqual(['base', 'adapter v7']);
    await chat.send('Again');
    const comparison = chat.comparison();
    expect(comparison.title).toBe('“Say hi”: base vs adapter v7');
    expect(comparison.baseModelId).toBe('m1');
    expect(comparison.messages).toEqual([
      { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hi' }, { role: 'user', content: 'Again' },
    ]);
    expect(comparison.outputs.map((o) => [o.turn, o.label, o.text])).toEqual([
      [0, 'base', '[base] turn 1'], [0, 'adapter v7', '[v7@1.5] turn 1'],
      [1, 'adapter v9', '[v9@1] turn 2'], [1, 'adapter v7', '[v7@1.5] turn 2'],
    ]);
    // Grouped back by prompt, and as Markdown: each answer under the label it was given.
    expect(turnsOf(comparison).map((t) => [t.prompt, t.answers.map((a) => a.label)])).toEqual([
      ['Say hi', ['base', 'adapter v7']], ['Again', ['adapter v9', 'adapter v7']],
    ]);
    const md = comparisonMarkdown(comparison, 'tiny');
    expect(md).toContain('Base model: tiny');
    expect(md).toContain('seed 1234');
    expect(md).toContain('System: Be brief.');
    expect(md).toContain('## Prompt 2\n\nAgain\n\n### adapter v9\n\n[v9@1] turn 2');
  });

  it('saving a comparison says so, lists it first, reopens it; a new prompt makes "saved" stale', async () => {
    const stored: SavedComparison[] = [];
    const api = fakeApi({
      'comparisons.save': (c) => {
        const saved = { ...c, id: `cmp_${stored.length + 1}`, createdAt: `2026-12-03T00:00:0${stored.length}.000Z` };
        stored.push(saved);
        return saved;
      },
      'comparisons.list': () => [...stored].reverse(),
    });
    const comparisons = new ComparisonsState(api);
    const content = (prompt: string) => ({
      title: `“${prompt}”: base`, baseModelId: 'm1', sampling: { maxNewTokens: 8, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1 },
      messages: [{ role: 'user' as const, content: prompt }],
      outputs: [{ turn: 0, label: 'base', mix: { adapters: [] }, text: 'Hello', tokens: 1, tokensPerSecond: null }],
    });
    await comparisons.save(content('first'));
    await comparisons.save(content('second'));
    expect(comparisons.notice).toBe('Saved “second”: base (1 answer): reopen it under Saved comparisons.');
    expect(comparisons.saved.map((c) => c.title)).toEqual(['“second”: base', '“first”: base']);
    await comparisons.refresh();
    expect(comparisons.saved.map((c) => c.id)).toEqual(['cmp_2', 'cmp_1']);
    comparisons.open('cmp_1');
    expect(comparisons.opened?.outputs[0]?.label).toBe('base');
    comparisons.forgetNotice();
    expect(comparisons.notice).toBeNull();
    const failing = new ComparisonsState(fakeApi({ 'comparisons.save': () => { throw appError('NOT_FOUND', "no base model 'm9'"); } }));
    expect(await failing.save(content('x'))).toBeNull();
    expect(failing.error).toBe("Could not save the comparison: no base model 'm9'");
  });
});
