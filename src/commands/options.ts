/** Option parsers shared by the commands: commander calls them with each value as given. */
import { InvalidArgumentError } from 'commander';
import { MODES, Mode, STATES, State, isMode, isState } from '../compile/mode';

export function parseState(v: string): State {
  if (!isState(v)) throw new InvalidArgumentError(`must be one of ${STATES.join(', ')}`);
  return v;
}

export function parseMode(v: string): Mode {
  if (!isMode(v)) throw new InvalidArgumentError(`must be one of ${MODES.join(', ')}`);
  return v;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
