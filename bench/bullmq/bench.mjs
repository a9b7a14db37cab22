// BullMQ side of ferry's Redis benchmark. See ../README.md.
//
//   node bench.mjs [defaults|tuned|all] [N]
//
// env: REDIS_URL (default redis://127.0.0.1:6379), N (default 100000), MODE (default all),
//      SIZE (payload bytes, default 100).
//
// For each mode: a fresh queue with a unique name gets N jobs with a SIZE-byte string
// payload, then one Worker drains it with an empty async processor; the queue is
// obliterated at the end (also on failure). Prints one line per mode:
//
//   bullmq mode=<m> enqueue_jobs_per_s=<x> process_jobs_per_s=<y>
//
// enqueue rate = N / (first add call .. last add resolved)
// process rate = N / (worker.run() .. N-th 'completed' event); the Worker's Redis
//                connections are opened (waitUntilReady) before the clock starts, as
//                ferry's bench opens its driver before timing.
//
// Modes:
//   defaults  queue.add() per job with default job options, 100 adds in flight at a time
//             (Promise.all over chunks of 100, chunks one after another); Worker with
//             default options (concurrency 1, completed/failed jobs kept).
//   tuned     queue.addBulk() in chunks of 1000 (four chunks in flight), jobs with
//             removeOnComplete: true (the job hash is deleted on completion, nothing is
//             kept) and removeOnFail: false (failed jobs kept, as ferry keeps dead
//             letters; no job fails here); Worker with concurrency 50.

import { Queue, Worker } from 'bullmq';

const MODES = {
  defaults: {
    enqueue: async (queue, n, payload) => {
      const CHUNK = 100;
      for (let i = 0; i < n; i += CHUNK) {
        const adds = [];
        for (let j = i; j < Math.min(n, i + CHUNK); j++) {
          adds.push(queue.add('job', payload));
        }
        await Promise.all(adds);
      }
    },
    workerOptions: {},
  },
  tuned: {
    enqueue: async (queue, n, payload) => {
      // Four addBulk calls in flight, like ferry bench's four producer tasks.
      const CHUNK = 1000;
      const IN_FLIGHT = 4;
      const opts = { removeOnComplete: true, removeOnFail: false };
      let next = 0;
      const producer = async () => {
        while (next < n) {
          const i = next;
          next += CHUNK;
          const jobs = [];
          for (let j = i; j < Math.min(n, i + CHUNK); j++) {
            jobs.push({ name: 'job', data: payload, opts });
          }
          await queue.addBulk(jobs);
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, producer));
    },
    workerOptions: { concurrency: 50 },
  },
};

/// ioredis connection options from a redis:// or rediss:// URL.
function connectionFromUrl(raw) {
  const url = new URL(raw);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new Error(`REDIS_URL must be redis:// or rediss://, not ${raw}`);
  }
  const db = url.pathname.replace(/^\//, '');
  return {
    host: url.hostname || '127.0.0.1',
    port: Number(url.port || 6379),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

async function runMode(mode, n, size, connection) {
  const spec = MODES[mode];
  const name = `ferrybench-${mode}-${process.pid}-${Date.now()}`;
  const payload = 'x'.repeat(size);
  const queue = new Queue(name, { connection });
  let worker;
  try {
    await queue.waitUntilReady();

    let t0 = process.hrtime.bigint();
    await spec.enqueue(queue, n, payload);
    const enqueueS = Number(process.hrtime.bigint() - t0) / 1e9;

    let completed = 0;
    let resolveDone;
    let rejectDone;
    const done = new Promise((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    worker = new Worker(name, async () => {}, {
      connection,
      autorun: false,
      ...spec.workerOptions,
    });
    worker.on('completed', () => {
      if (++completed === n) resolveDone(process.hrtime.bigint());
    });
    worker.on('failed', (job, err) => rejectDone(new Error(`job ${job?.id} failed: ${err}`)));
    worker.on('error', (err) => rejectDone(err));
    await worker.waitUntilReady();

    t0 = process.hrtime.bigint();
    const running = worker.run();
    running.catch(rejectDone);
    const t1 = await done;
    const processS = Number(t1 - t0) / 1e9;

    console.log(
      `bullmq mode=${mode} enqueue_jobs_per_s=${Math.round(n / enqueueS)} process_jobs_per_s=${Math.round(n / processS)}`,
    );
  } finally {
    if (worker) await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
}

async function main() {
  const mode = process.argv[2] ?? process.env.MODE ?? 'all';
  const n = Number(process.argv[3] ?? process.env.N ?? 100000);
  const size = Number(process.env.SIZE ?? 100);
  const connection = connectionFromUrl(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  if (!Number.isInteger(n) || n < 1) throw new Error(`N must be a positive integer, not ${n}`);
  const modes = mode === 'all' ? Object.keys(MODES) : [mode];
  for (const m of modes) {
    if (!MODES[m]) throw new Error(`unknown mode ${m}; use defaults, tuned or all`);
  }
  for (const m of modes) {
    await runMode(m, n, size, connection);
  }
}

main().catch((err) => {
  console.error(`bullmq bench failed: ${err?.stack ?? err}`);
  process.exit(1);
});
