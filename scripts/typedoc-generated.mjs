// A typedoc plugin for lib/protocol.gen.ts. The generated tables (CODES, SELECTORS, LIMITS, ...)
// are documented as wholes (scripts/gen-protocol.js writes their doc comments); their members
// are data whose meaning is the protocol file's (139 codes × name/value/message and the like).
// So the members of those constants' literal types get one comment pointing there, and every
// other export still has to carry its own (typedoc's notDocumented validation).
import { Comment, Converter, ReflectionKind } from 'typedoc';

const GENERATED = /(^|[/\\])lib[/\\]protocol\.gen\.ts$/;

export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const project = context.project;
    for (const ref of project.getReflectionsByKind(ReflectionKind.Property)) {
      if (ref.hasComment()) continue;
      const file = project.getSymbolIdFromReflection(ref)?.fileName ?? ref.sources?.[0]?.fullFileName ?? '';
      if (!GENERATED.test(file)) continue;
      let p = ref.parent;
      while (p && !p.kindOf(ReflectionKind.TypeLiteral)) p = p.parent;
      if (!p) continue; // a top-level export: it needs its own comment
      ref.comment = new Comment([{ kind: 'text', text: 'Generated from `protocol/kextbridge.json`: the entry of that name there.' }]);
    }
  });
}
