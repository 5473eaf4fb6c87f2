// The broker settings the harness writes for single-node KRaft.
import { describe, expect, it } from "vitest";
import { kafkaServerProperties } from "../services/kafka.js";

describe("kafkaServerProperties", () => {
  it("binds broker and controller to loopback and sizes internal topics for one node", () => {
    const lines = kafkaServerProperties({ broker: 19092, controller: 19093 }, "/tmp/k/logs").trim().split("\n");
    expect(lines).toContain("process.roles=broker,controller");
    expect(lines).toContain("controller.quorum.voters=1@127.0.0.1:19093");
    expect(lines).toContain("listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093");
    expect(lines).toContain("advertised.listeners=PLAINTEXT://127.0.0.1:19092");
    expect(lines).toContain("log.dirs=/tmp/k/logs");
    expect(lines).toContain("offsets.topic.replication.factor=1");
    expect(lines).toContain("transaction.state.log.min.isr=1");
    expect(lines).toContain("group.initial.rebalance.delay.ms=0");
  });
});
