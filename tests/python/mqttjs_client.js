// One MQTT.js client for the integration suite (run by node; test_mqttjs.py drives it).
// Connects to URL as CLIENT_ID with protocol version VERSION, subscribes to SUB at QoS 1,
// prints "ready", prints "got <topic> <payload length> <payload head>" for each of the
// COUNT messages it waits for, then publishes REPLY to PUB at QoS 1, prints "sent" and
// ends. Any error, or no progress within 20 s, exits non-zero.
const mqtt = require("mqtt");
const [url, clientId, version, sub, count, pub, reply] = process.argv.slice(2);
const timer = setTimeout(() => { console.log("timeout"); process.exit(3); }, 20000);
const client = mqtt.connect(url, {
  clientId, protocolVersion: Number(version), clean: true, reconnectPeriod: 0,
  connectTimeout: 5000,
});
let got = 0;
client.on("error", (e) => { console.log(`error ${e.message}`); process.exit(2); });
client.on("connect", () => {
  client.subscribe(sub, { qos: 1 }, (err, granted) => {
    if (err || granted[0].qos !== 1) { console.log(`suback ${err} ${JSON.stringify(granted)}`); process.exit(2); }
    console.log("ready");
  });
});
client.on("message", (topic, payload) => {
  console.log(`got ${topic} ${payload.length} ${payload.subarray(0, 16).toString()}`);
  got += 1;
  if (got === Number(count)) {
    client.publish(pub, reply, { qos: 1 }, (err) => {
      if (err) { console.log(`puback ${err}`); process.exit(2); }
      console.log("sent");
      clearTimeout(timer);
      client.end(false, () => process.exit(0));
    });
  }
});
