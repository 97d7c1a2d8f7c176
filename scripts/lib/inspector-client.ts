// Attaches to a Node inspector's ws:// URL as DevTools would, through the inspector
// protocol (https://chromedevtools.github.io/devtools-protocol/v8/Runtime/#method-evaluate),
// and evaluates one expression. The ws package: Node 20 has no WebSocket client without a flag.
import WebSocket from 'ws';

export async function evaluateOver(url: string, expression: string, timeoutMs: number): Promise<unknown> {
  const socket = new WebSocket(url);
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the inspector at ${url} within ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`could not attach to ${url}: ${error.message}`));
      });
      socket.once('open', () => socket.send(JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression, returnByValue: true } })));
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as { id?: number; result?: { result?: { value?: unknown } }; error?: { message: string } };
        if (message.id !== 1) return;
        clearTimeout(timer);
        if (message.error) reject(new Error(`the inspector at ${url} answered: ${message.error.message}`));
        else resolve(message.result?.result?.value);
      });
    });
  } finally {
    socket.terminate();
  }
}
