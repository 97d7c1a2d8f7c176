import { fetchNode } from '../scripts/lib/node-versions.ts';
console.log(JSON.stringify([22, 24, 26].map(fetchNode)));
