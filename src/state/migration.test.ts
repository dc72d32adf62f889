import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  MIGRATION_STATES,
  MigrationControl,
  activityOf,
  isArc,
  legalArcs,
  migrationPath,
  type Activity,
  type MigrationFlags,
  type MigrationState,
} from "./migration.js";

const FULL: MigrationFlags = { p2p: true, preCopy: true };

// The uAPI's arcs, written out once more by hand from include/uapi/linux/vfio.h's list, so that
// the table in migration.ts is checked against an independent copy.
// With P2P, RUNNING <-> STOP is taken through RUNNING_P2P, as the kernel's next-state table does.
const EXPECTED_DIRECT = new Set([
  "STOP>STOP_COPY",
  "STOP_COPY>STOP",
  "STOP>RESUMING",
  "RESUMING>STOP",
  "RUNNING>RUNNING_P2P",
  "RUNNING_P2P>RUNNING",
  "RUNNING_P2P>STOP",
  "STOP>RUNNING_P2P",
  "RUNNING>PRE_COPY",
  "PRE_COPY>RUNNING",
  "PRE_COPY>STOP_COPY",
  "PRE_COPY>PRE_COPY_P2P",
  "PRE_COPY_P2P>PRE_COPY",
  "PRE_COPY_P2P>STOP_COPY",
  "RUNNING_P2P>PRE_COPY_P2P",
  "PRE_COPY_P2P>RUNNING_P2P",
]);

// Shortest paths for a device with every optional feature, per the kernel's
// vfio_mig_get_next_state() table (intermediate states only RUNNING, STOP, RUNNING_P2P).
const EXPECTED_PATHS: Record<string, string> = {
  "RUNNING>STOP_COPY": "RUNNING_P2P STOP STOP_COPY",
  "RUNNING>RESUMING": "RUNNING_P2P STOP RESUMING",
  "STOP_COPY>RUNNING": "STOP RUNNING_P2P RUNNING",
  "RESUMING>RUNNING": "STOP RUNNING_P2P RUNNING",
  "STOP_COPY>RESUMING": "STOP RESUMING",
  "RESUMING>STOP_COPY": "STOP STOP_COPY",
  "PRE_COPY>STOP": "RUNNING RUNNING_P2P STOP",
  "STOP>PRE_COPY": "RUNNING_P2P RUNNING PRE_COPY",
  "STOP>PRE_COPY_P2P": "RUNNING_P2P PRE_COPY_P2P",
  "RESUMING>PRE_COPY": "STOP RUNNING_P2P RUNNING PRE_COPY",
  "RUNNING>STOP": "RUNNING_P2P STOP",
  "STOP>RUNNING": "RUNNING_P2P RUNNING",
};

describe("VFIO migration v2 states", () => {
  it("has exactly the uAPI's direct arcs with every optional feature, and only the required ones without", () => {
    const got = new Set(legalArcs(FULL).map(([a, b]) => `${a}>${b}`));
    expect(got).toEqual(EXPECTED_DIRECT);
    const bare = new Set(legalArcs({ p2p: false }).map(([a, b]) => `${a}>${b}`));
    expect(bare).toEqual(new Set(["RUNNING>STOP", "STOP>RUNNING", "STOP>STOP_COPY", "STOP_COPY>STOP", "STOP>RESUMING", "RESUMING>STOP"]));
  });

  it("table: every ordered pair of states gets the expected path or none", () => {
    for (const from of MIGRATION_STATES) {
      for (const to of MIGRATION_STATES) {
        const p = migrationPath(from, to, FULL);
        const key = `${from}>${to}`;
        if (from === to) expect(p).toEqual([]);
        else if (from === "ERROR" || to === "ERROR") expect(p).toBeUndefined();
        else if (EXPECTED_DIRECT.has(key)) expect(p).toEqual([to]);
        else if (key in EXPECTED_PATHS) expect(p!.join(" ")).toBe(EXPECTED_PATHS[key]);
        else {
          // Every other pair still has a path, made of legal arcs, no longer than any other.
          expect(p, key).toBeDefined();
          let s: MigrationState = from;
          for (const n of p!) {
            expect(isArc(s, n, FULL), `${key}: ${s}>${n}`).toBe(true);
            s = n;
          }
          expect(s).toBe(to);
        }
      }
    }
  });

  it("without P2P, RUNNING -> STOP_COPY goes through STOP only, and P2P states are unreachable", () => {
    expect(migrationPath("RUNNING", "STOP_COPY", {})).toEqual(["RUNNING_P2P", "STOP", "STOP_COPY"]);
    expect(migrationPath("RUNNING", "STOP_COPY", { p2p: false })).toEqual(["STOP", "STOP_COPY"]);
    expect(migrationPath("RUNNING", "RUNNING_P2P", { p2p: false })).toBeUndefined();
    expect(migrationPath("RUNNING", "PRE_COPY", {})).toBeUndefined();
  });

  it("maps states to the data path's activity", () => {
    const want: Record<MigrationState, Activity> = {
      RUNNING: "running",
      PRE_COPY: "running",
      RUNNING_P2P: "quiesced",
      PRE_COPY_P2P: "quiesced",
      STOP: "stopped",
      STOP_COPY: "stopped",
      RESUMING: "stopped",
      ERROR: "stopped",
    };
    for (const s of MIGRATION_STATES) expect(activityOf(s)).toBe(want[s]);
  });

  it("a refused arc leaves the device in ERROR, stopped, and only reset leaves it", () => {
    const acts: Activity[] = [];
    const m = new MigrationControl({
      setActivity: (a) => acts.push(a),
      onArc: (_f, to) => {
        if (to === "STOP_COPY") throw new Error("no room for the state");
      },
    });
    const e = m.set("STOP_COPY");
    expect(e?.message).toMatch(/STOP -> STOP_COPY: refused: no room/);
    expect(m.state).toBe("ERROR");
    expect(acts).toEqual(["quiesced", "stopped", "stopped"]);
    expect(m.set("RUNNING")?.message).toMatch(/no legal path/);
    expect(m.state).toBe("ERROR");
    m.reset();
    expect(m.state).toBe("RUNNING");
    expect(acts.at(-1)).toBe("running");
  });

  it("property: any sequence of requested states is reached by legal arcs or fails cleanly", () => {
    let requests = 0;
    fc.assert(
      fc.property(
        fc.record({ p2p: fc.boolean(), preCopy: fc.boolean() }),
        fc.array(fc.record({ to: fc.constantFrom(...MIGRATION_STATES), refuse: fc.integer({ min: 0, max: 40 }), reset: fc.boolean() }), { minLength: 1, maxLength: 200, size: "max" }),
        (flags, reqs) => {
          const seen: [MigrationState, MigrationState][] = [];
          let refuseAt = -1;
          const acts: Activity[] = [];
          const m = new MigrationControl(
            {
              setActivity: (a) => acts.push(a),
              onArc: (f, t) => {
                if (seen.length === refuseAt) throw new Error("injected");
                seen.push([f, t]);
              },
            },
            flags,
          );
          for (const r of reqs) {
            requests++;
            refuseAt = r.refuse === 0 ? seen.length : -1;
            if (r.reset && m.state === "ERROR") m.reset();
            const before = m.state;
            const arcsBefore = seen.length;
            const err = m.set(r.to);
            for (const [f, t] of seen.slice(arcsBefore)) expect(isArc(f, t, flags)).toBe(true);
            if (err === undefined) {
              expect(m.state).toBe(r.to);
              expect(acts.at(-1) ?? "running").toBe(activityOf(r.to));
            } else if (/no legal path/.test(err.message)) {
              expect(m.state).toBe(before);
              expect(seen.length).toBe(arcsBefore);
            } else {
              expect(m.state).toBe("ERROR");
              expect(acts.at(-1)).toBe("stopped");
            }
          }
        },
      ),
      { numRuns: 300 },
    );
    // Full size: the runs together made far more than the default ~10 requests per run.
    expect(requests).toBeGreaterThan(300 * 20);
  });
});
