/**
 * `fedkeeper report RUN_DIR [RUN_DIR …] [-o FILE]`: one self-contained report.html for one or several runs.
 * Every run directory is read and checked before anything is written: a bad one writes nothing.
 */
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { readRunDir, ReportInputError, shapeReport } from './data.js';
import { loadChartLibrary, renderReportHtml } from './html.js';

export { ReportInputError } from './data.js';

export const REPORT_FILE = 'report.html';

/**
 * Where the report goes: `output` if given (a directory there gets report.html inside); else RUN_DIR/report.html for
 * one run, and report.html in the current directory for several.
 */
export function reportPath(runDirs: readonly string[], output?: string): string {
  if (output !== undefined) {
    return existsSync(output) && statSync(output).isDirectory() ? path.resolve(output, REPORT_FILE) : path.resolve(output);
  }
  return runDirs.length === 1 ? path.resolve(runDirs[0]!, REPORT_FILE) : path.resolve(REPORT_FILE);
}

function version(): string {
  try {
    return (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
  } catch {
    return '';
  }
}

/** Reads the run directories, writes the report (atomically) and returns its path. */
export function writeReport(runDirs: readonly string[], output?: string): string {
  if (!runDirs.length) throw new ReportInputError('name at least one run directory: fedkeeper report RUN_DIR [RUN_DIR …] [-o FILE]');
  const runs = runDirs.map((d) => readRunDir(d));
  const file = reportPath(runDirs, output);
  const v = version();
  const html = renderReportHtml(shapeReport(runs), loadChartLibrary(), v ? `fedkeeper ${v}` : 'fedkeeper');
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, html);
  renameSync(tmp, file);
  return file;
}
