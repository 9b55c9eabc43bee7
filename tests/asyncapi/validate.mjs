// Validates an AsyncAPI document the way consumers' tooling will read it.
//
// Usage: node validate.mjs path/to/asyncapi.yaml
//
// Exit codes: 0 valid (warnings and hints allowed), 1 error-severity diagnostics or
// an invalid Avro schema, 2 the file could not be read, or the parser gave up
// without saying why.
//
// Why the Avro parser is wrapped: for AsyncAPI 3 documents @asyncapi/parser only
// converts multi-format schemas with the registered schema parser and never calls
// its validate(), so an Avro payload naming an unknown type still "parses". The
// wrapper compiles every Avro schema the parser hands over with avsc (through the
// Avro parser's own validate()) and reports what fails as errors.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

import { AvroSchemaParser } from '@asyncapi/avro-schema-parser';
import { DiagnosticSeverity, Parser } from '@asyncapi/parser';

const SEVERITY_NAMES = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

function validatingAvroParser(problems) {
  const avro = AvroSchemaParser();
  return {
    ...avro,
    async parse(input) {
      const found = await avro.validate(input);
      if (found.length > 0) {
        for (const problem of found) {
          problems.set(`${(problem.path ?? input.path).join('.')}: ${problem.message}`, problem);
        }
        // Converting an invalid schema would only throw a less precise error.
        return input.data;
      }
      return avro.parse(input);
    },
  };
}

function describe(diagnostic) {
  const severity = SEVERITY_NAMES[diagnostic.severity] ?? `severity ${diagnostic.severity}`;
  const where = (diagnostic.path ?? []).join('.') || '(document)';
  const line = diagnostic.range ? `:${diagnostic.range.start.line + 1}` : '';
  return `${severity} ${diagnostic.code ?? ''} at ${where}${line}: ${diagnostic.message}`;
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node validate.mjs <asyncapi document>');
    return 2;
  }
  const path = resolve(argv[0]);
  let text;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    console.error(`cannot read ${path}: ${error.message}`);
    return 2;
  }

  const avroProblems = new Map();
  const parser = new Parser();
  parser.registerSchemaParser(validatingAvroParser(avroProblems));
  const { document, diagnostics } = await parser.parse(text, { source: path });

  for (const diagnostic of diagnostics) {
    console.log(describe(diagnostic));
  }
  for (const key of avroProblems.keys()) {
    console.log(`error avro-schema at ${key}`);
  }
  const errors =
    diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).length + avroProblems.size;
  if (errors > 0) {
    console.error(`${path}: invalid, ${errors} error(s)`);
    return 1;
  }
  if (document === undefined) {
    console.error(`${path}: could not be parsed`);
    return 2;
  }
  console.log(
    `${path}: valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ` +
      `${document.operations().length} operations, ${document.allMessages().length} messages`,
  );
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
