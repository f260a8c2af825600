import { signReport } from '../crypto/sign.js';
import type { Report } from '../core/report-schema.js';
import type { DeliveryPlan } from '../delivery/plan.js';
import type { RemoteTarget, SideRole } from '../delivery/types.js';
import { writeFileExclusive } from '../sinks/exclusive.js';
import type { JobOptions } from './job.js';
import { LOG_SUFFIX, REPORT_SUFFIX, SIGNATURE_SUFFIX, renderLog, serializeReport } from './report.js';

/** A side file for the network target; a failure costs a warning, never the report (it still reaches stderr). */
export async function putSide(target: RemoteTarget, role: SideRole, data: Buffer, warnings: string[]): Promise<string | undefined> {
  try {
    return await target.putSide(role, data);
  } catch (e) {
    warnings.push(`${role} not delivered to ${target.describe}: ${(e as Error).message}`);
    return undefined;
  }
}

/**
 * The report, its log and its signature: beside the file; for stdout to --report or stderr; for a network target
 * to the far side (and to --report too when given). Whatever fails, the report reaches stderr rather than being lost.
 */
export async function deliverReport(o: JobOptions, report: Report, w: { out: string; toStdout: boolean; target: RemoteTarget | undefined; signKey: DeliveryPlan['signKey'] }): Promise<{ path: string | undefined; lost: 'E_REMOTE' | 'E_WRITE' | undefined }> {
  const text = serializeReport(report);
  const sig = w.signKey ? signReport(Buffer.from(text), w.signKey) : undefined;
  const writeLocal = async (path: string, log: boolean) => {
    await writeFileExclusive(path, text);
    if (sig) await writeFileExclusive(path + SIGNATURE_SUFFIX, sig);
    if (log) await writeFileExclusive(path.slice(0, -REPORT_SUFFIX.length) + LOG_SUFFIX, renderLog(report));
  };
  try {
    if (w.target) {
      let remotePath: string | undefined;
      const problems: string[] = [];
      try {
        remotePath = await putSide(w.target, 'report', Buffer.from(text), problems);
        if (remotePath) {
          if (sig) await putSide(w.target, 'signature', Buffer.from(sig), problems);
          await putSide(w.target, 'log', Buffer.from(renderLog(report)), problems);
        }
      } finally {
        await w.target.close().catch(() => undefined);
      }
      for (const p of problems) process.stderr.write(`memdump: ${p}\n`);
      if (o.reportPath) await writeLocal(o.reportPath, false);
      else if (!remotePath) process.stderr.write(`memdump: ${w.target.describe} ${problems.length ? 'did not take the report' : 'holds the evidence only'}; here is the report:\n${text}${sig ? `signature (${REPORT_SUFFIX}${SIGNATURE_SUFFIX}):\n${sig}` : ''}`);
      // the evidence arrived but its report, log or signature did not: a fleet job must not count that as success
      return { path: remotePath ?? o.reportPath, lost: problems.length > 0 ? 'E_REMOTE' : undefined };
    }
    if (w.toStdout) {
      if (o.reportPath) {
        await writeLocal(o.reportPath, false);
        return { path: o.reportPath, lost: undefined };
      }
      process.stderr.write(text);
      return { path: undefined, lost: undefined };
    }
    await writeLocal(w.out + REPORT_SUFFIX, true);
    return { path: w.out + REPORT_SUFFIX, lost: undefined };
  } catch (e) {
    // a full disk must not cost the record of what happened: the report goes to stderr instead
    process.stderr.write(`memdump: could not write the report (${(e as Error).message}); here it is:\n${text}${sig ? `signature:\n${sig}` : ''}`);
    return { path: undefined, lost: 'E_WRITE' };
  }
}
