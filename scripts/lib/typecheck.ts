// Typechecks one learner file (and what it imports) with the course's tsconfig, so a
// type error is reported as file:line before any server starts.
import path from 'node:path';
import ts from 'typescript';
import { REPO_ROOT, relativeToRepo } from './paths.ts';

export function typecheck(file: string): string[] {
  const configPath = path.join(REPO_ROOT, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, REPO_ROOT);
  // The course's declaration of loadtest's promise API replaces the out-of-date bundled one.
  const declarations = parsed.fileNames.filter((name) => name.endsWith('.d.ts'));
  const program = ts.createProgram([file, ...declarations], parsed.options);
  return ts.getPreEmitDiagnostics(program).map(formatDiagnostic);
}

function formatDiagnostic(diagnostic: ts.Diagnostic): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
  if (!diagnostic.file || diagnostic.start === undefined) return message;
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return `${relativeToRepo(diagnostic.file.fileName)}:${line + 1}:${character + 1}: ${message}`;
}
