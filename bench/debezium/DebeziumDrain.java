import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The reference reader of bench/capture-drain.ts: Debezium's embedded engine (PostgreSQL connector,
 * pgoutput, JSON without the per-record schema, batches of up to 4,096 like Sluice's) handing each batch to a Kafka producer
 * with acks=all and idempotence, a batch marked processed only once every record of it is acknowledged
 * by Kafka (what Debezium Server's Kafka sink does). Streams an existing slot (snapshot.mode no_data)
 * until it has published the expected number of changes, then prints one JSON line with its figures
 * and waits to be killed (so the caller can read its peak RSS).
 *
 * Arguments are KEY=VALUE: host port user password database slot publication table brokers topicPrefix changes.
 */
public final class DebeziumDrain {
  public static void main(String[] argv) throws Exception {
    Properties args = new Properties();
    for (String arg : argv) {
      int eq = arg.indexOf('=');
      args.setProperty(arg.substring(0, eq), arg.substring(eq + 1));
    }
    long expected = Long.parseLong(args.getProperty("changes"));
    long launched = System.nanoTime();

    Properties producerProps = new Properties();
    producerProps.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args.getProperty("brokers"));
    producerProps.put(ProducerConfig.ACKS_CONFIG, "all");
    producerProps.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    producerProps.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    producerProps.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    // Batches large enough for a backlog (the client's 16 KiB default holds a handful of JSON envelopes).
    producerProps.put(ProducerConfig.BATCH_SIZE_CONFIG, "1048576");
    producerProps.put(ProducerConfig.LINGER_MS_CONFIG, "10");
    KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps);

    Properties props = new Properties();
    props.setProperty("name", "sluice-bench");
    props.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
    props.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
    props.setProperty("offset.flush.interval.ms", "1000");
    props.setProperty("plugin.name", "pgoutput");
    props.setProperty("slot.name", args.getProperty("slot"));
    props.setProperty("publication.name", args.getProperty("publication"));
    props.setProperty("publication.autocreate.mode", "disabled");
    props.setProperty("snapshot.mode", "no_data");
    props.setProperty("database.hostname", args.getProperty("host"));
    props.setProperty("database.port", args.getProperty("port"));
    props.setProperty("database.user", args.getProperty("user"));
    props.setProperty("database.password", args.getProperty("password"));
    props.setProperty("database.dbname", args.getProperty("database"));
    props.setProperty("topic.prefix", args.getProperty("topicPrefix"));
    props.setProperty("table.include.list", args.getProperty("table"));
    // The envelope alone, as Sluice's Avro records carry no schema either (the registry does).
    props.setProperty("converter.schemas.enable", "false");
    props.setProperty("max.batch.size", "4096");
    props.setProperty("max.queue.size", "16384");
    // Logical decoding messages of other programs on the server (Sluice's heartbeats, say) are no part of the backlog.
    props.setProperty("message.prefix.exclude.list", ".*");
    String dataTopic = args.getProperty("topicPrefix") + "." + args.getProperty("table");

    AtomicLong published = new AtomicLong();
    long[] first = {0, 0};
    long cpuStart = cpuNanos();
    Object done = new Object();

    DebeziumEngine.ChangeConsumer<ChangeEvent<String, String>> consumer = (records, committer) -> {
      List<Future<RecordMetadata>> sends = new ArrayList<>(records.size());
      for (ChangeEvent<String, String> record : records) {
        if (dataTopic.equals(record.destination())) sends.add(producer.send(new ProducerRecord<>(record.destination(), record.key(), record.value())));
      }
      for (Future<RecordMetadata> send : sends) {
        try {
          send.get();
        } catch (Exception e) {
          throw new RuntimeException(e);
        }
      }
      for (ChangeEvent<String, String> record : records) committer.markProcessed(record);
      committer.markBatchFinished();
      long now = System.nanoTime();
      long total = published.addAndGet(sends.size());
      if (first[0] == 0 && total > 0) {
        first[0] = now;
        first[1] = cpuNanos();
      }
      if (total >= expected && total - sends.size() < expected) {
        synchronized (done) {
          done.notifyAll();
        }
        double seconds = (now - first[0]) / 1e9;
        double cpuSeconds = (cpuNanos() - first[1]) / 1e9;
        System.out.println("{\"changes\":" + total + ",\"seconds\":" + seconds + ",\"cpuSeconds\":" + cpuSeconds
            + ",\"firstRecordSeconds\":" + (first[0] - launched) / 1e9 + ",\"cpuBeforeFirst\":" + (first[1] - cpuStart) / 1e9 + "}");
        System.out.flush();
      }
    };

    ExecutorService executor = Executors.newSingleThreadExecutor();
    DebeziumEngine<ChangeEvent<String, String>> engine = DebeziumEngine.create(Json.class).using(props).notifying(consumer).build();
    executor.execute(engine);
    synchronized (done) {
      while (published.get() < expected) done.wait(1000);
    }
    // The caller reads VmHWM and kills this process.
    Thread.sleep(Long.MAX_VALUE);
  }

  private static long cpuNanos() {
    return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
  }
}
