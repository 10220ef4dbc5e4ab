import { describe, expect, it } from 'vitest';
import { corpusDocuments, kjvDumpToText } from '../../scripts/starter/corpus';

describe('starter corpus preparation', () => {
  it('strips verse references, keeps one verse a line and splits chapters by a blank line', () => {
    const dump = [
      'Ge1:1 In the beginning God created the heaven and the earth.',
      'Ge1:2 And the earth was without form, and void.',
      'Ge2:1 Thus the heavens and the earth were finished.',
      '1Co13:4 Charity suffereth long, and is kind;',
      'not a verse line',
      '',
    ].join('\n');
    const text = kjvDumpToText(dump);
    expect(text).toBe('In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void.\n\n' +
      'Thus the heavens and the earth were finished.\n\nCharity suffereth long, and is kind;\n');
    expect(corpusDocuments(text)).toHaveLength(3);
  });
});
