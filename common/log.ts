// What the supervisor and the worker write their events with. Lessons 6 to 8 pass
// nothing and get consoleLog: the same lines as ever. Lesson 9 passes a pino logger,
// whose info(fields, message) and error(fields, message) fit, and gets the same
// messages as JSON lines, with the fields that let a program find them.
export type LogFields = Record<string, unknown>;

export interface Log {
  info(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
}

export const consoleLog: Log = {
  info: (_fields, message) => console.log(message),
  error: (fields, message) => (fields.err === undefined ? console.error(message) : console.error(message, fields.err)),
};
