// How the course starts its own processes (commands, checks, tests), never a learner's
// server: loadtest's agentkeepalive calls util._extend, which newer Node deprecates with
// a warning (DEP0060) that a learner would read as their own mistake. Every supported
// Node (20.11 on) has --disable-warning; package.json's scripts and .mocharc.json pass
// the same flag.
export const COURSE_NODE_FLAGS = ['--import', 'tsx', '--disable-warning=DEP0060'];
