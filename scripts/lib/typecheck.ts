// Typechecks a learner file (and what it imports) with the course's tsconfig, so a
// type error is reported as file:line before any server starts. npm test passes several.
import path from 'node:path';
import type ts from 'typescript';
import { REPO_ROOT, relativeToRepo } from './paths.ts';

export async function typecheck(...files: string[]): Promise<string[]> {
  // Loaded only when needed: npm test checks its fixtures without it.
  const { default: typescript } = await import('typescript');
  const configPath = path.join(REPO_ROOT, 'tsconfig.json');
  const config = typescript.readConfigFile(configPath, typescript.sys.readFile);
  const parsed = typescript.parseJsonConfigFileContent(config.config, typescript.sys, REPO_ROOT);
  // The course's declaration of loadtest's promise API replaces the out-of-date bundled one.
  const declarations = parsed.fileNames.filter((name) => name.endsWith('.d.ts'));
  const program = typescript.createProgram([...files, ...declarations], parsed.options);
  return typescript.getPreEmitDiagnostics(program).map((diagnostic) => formatDiagnostic(typescript, diagnostic));
}

function formatDiagnostic(typescript: typeof ts, diagnostic: ts.Diagnostic): string {
  const message = typescript.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
  if (!diagnostic.file || diagnostic.start === undefined) return message;
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return `${relativeToRepo(diagnostic.file.fileName)}:${line + 1}:${character + 1}: ${message}`;
}
