import type { Change } from './apply.js';
import { snapshot } from './state.js';

export const HISTORY_DROPIN = '/etc/profile.d/memdump-history.sh';
export const BASHRC = '/etc/bash.bashrc';
export const BASHRC_LINE = `[ -r ${HISTORY_DROPIN} ] && . ${HISTORY_DROPIN} # memdump config history`;

/**
 * Complete, timestamped history for every interactive shell: history on, appended not overwritten, nothing
 * ignored, no size limit, timestamps as "%F-%R ". Only interactive shells are touched (a script must not start
 * writing history). zsh gets the equivalent options but reads this file only if its startup files source it.
 */
export const HISTORY_CONTENT = `# Written by "memdump config history --apply"; undo with "memdump config history --revert".
# Keeps a complete, timestamped shell history for every user (forensic readiness).
case $- in
  *i*)
    if [ -n "\${BASH_VERSION-}" ]; then
      set -o history
      shopt -s histappend
      HISTCONTROL=
      HISTIGNORE=
      HISTSIZE=-1
      HISTFILESIZE=-1
      HISTTIMEFORMAT='%F-%R '
      export HISTCONTROL HISTIGNORE HISTSIZE HISTFILESIZE HISTTIMEFORMAT
    elif [ -n "\${ZSH_VERSION-}" ]; then
      setopt APPEND_HISTORY EXTENDED_HISTORY INC_APPEND_HISTORY
      unsetopt HIST_IGNORE_SPACE HIST_IGNORE_DUPS HIST_IGNORE_ALL_DUPS HIST_SAVE_NO_DUPS HIST_NO_STORE
      HISTFILE=\${HISTFILE:-$HOME/.zsh_history}
      HISTSIZE=1000000000
      SAVEHIST=1000000000
    fi
    ;;
esac
`;

export interface HistoryOptions {
  root: string;
  /** Also source the drop-in from /etc/bash.bashrc, which interactive non-login bash reads (profile.d is login-only). */
  bashrc: boolean;
}

export const HISTORY_NOTES = [
  `${HISTORY_DROPIN} is read by login shells (ssh, console). Interactive non-login bash reads ${BASHRC} instead: pass --bashrc to add one line there.`,
  "A user's own ~/.bashrc runs later and may set HISTCONTROL/HISTSIZE again (Debian's default one does); check /etc/skel/.bashrc and existing home directories.",
  `zsh reads neither file by default: add ". ${HISTORY_DROPIN}" to /etc/zsh/zshrc (Debian) or /etc/zshrc; the drop-in sets APPEND_HISTORY, EXTENDED_HISTORY, INC_APPEND_HISTORY and HISTFILE for zsh.`,
];

export async function planHistory(o: HistoryOptions): Promise<{ changes: Change[]; notes: string[] }> {
  const changes: Change[] = [];
  const notes = [...HISTORY_NOTES];
  const cur = await snapshot(o.root, HISTORY_DROPIN);
  const curText = cur.exists && cur.content !== null ? Buffer.from(cur.content, 'base64').toString('utf8') : null;
  if (curText !== HISTORY_CONTENT || (cur.exists && cur.mode !== 0o644)) {
    changes.push({ kind: 'file', path: HISTORY_DROPIN, content: HISTORY_CONTENT, mode: 0o644, why: 'history settings for every interactive login shell' });
  }
  if (o.bashrc) {
    const b = await snapshot(o.root, BASHRC);
    if (!b.exists || b.content === null) notes.push(`${BASHRC} does not exist here; not created (this distribution's bash does not read it)`);
    else {
      const t = Buffer.from(b.content, 'base64').toString('utf8');
      if (!t.split('\n').includes(BASHRC_LINE)) {
        changes.push({ kind: 'file', path: BASHRC, content: t + (t === '' || t.endsWith('\n') ? '' : '\n') + BASHRC_LINE + '\n', mode: b.mode, why: 'interactive non-login bash reads the same settings' });
      }
    }
  }
  return { changes, notes };
}
