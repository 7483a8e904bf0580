import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.math.BigDecimal;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Materialises Sluice's topics with Apache Flink's own `debezium-avro-confluent` format, as a Flink
 * user would: one Kafka source table per captured table (streaming, read_committed, from the
 * earliest offset), its changelog (+I, -U, +U, -D) applied to an in-memory map keyed by the primary
 * key. Prints the final state of every table as one JSON line once every table's job has read
 * its topic through (in each partition, the last committed record with a value there was at the
 * start; tombstones Flink's formats skip), or failed, or at `timeoutSeconds`.
 *
 * Argument: a JSON file {brokers, registry?, timeoutSeconds, tables: [{name, topic, columns (Flink
 * DDL column list), key: [column], format?, registry?}]}: a table's registry, else the spec's; format is
 * `debezium-avro-confluent` unless given (`avro-confluent` reads a plain Avro topic such as the
 * transaction topic, every record an insert). Every value is printed as text (decimals plain, bytes
 * in hex, arrays as JSON arrays, rows as objects); a table whose job failed has "error".
 */
public final class FlinkDebeziumMaterialise {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** One table's job: its changelog applied to the state, by a thread of its own. */
  private static final class Materialised {
    final String name;
    final List<String> key;
    /** Per partition: the offset of the last record to read (its last committed one with a value when the run began). */
    final Map<Integer, Long> lastOffsets;
    /** Per partition: the highest offset read so far. */
    final Map<Integer, Long> readOffsets = new ConcurrentHashMap<>();
    final Map<String, Row> state = new TreeMap<>();
    final AtomicLong changes = new AtomicLong();
    volatile String error;
    volatile CloseableIterator<Row> iterator;

    Materialised(String name, List<String> key, Map<Integer, Long> lastOffsets) {
      this.name = name;
      this.key = key;
      this.lastOffsets = lastOffsets;
    }

    boolean readThrough() {
      return lastOffsets.entrySet().stream().allMatch(e -> readOffsets.getOrDefault(e.getKey(), -1L) >= e.getValue());
    }

    String keyOf(Row row) {
      StringBuilder text = new StringBuilder();
      for (String column : key) text.append(render(row.getField(column))).append('\u0000');
      return text.toString();
    }

    void apply(Row row) {
      synchronized (state) {
        switch (row.getKind()) {
          case INSERT, UPDATE_AFTER -> state.put(keyOf(row), row);
          case UPDATE_BEFORE, DELETE -> state.remove(keyOf(row));
        }
      }
      readOffsets.merge((Integer) row.getField(PARTITION), (Long) row.getField(OFFSET), Math::max);
      changes.incrementAndGet();
    }
  }

  public static void main(String[] args) {
    try {
      run(args);
    } catch (Throwable error) {
      // Flink's threads would keep the JVM alive: say why and end it.
      System.err.println("FlinkDebeziumMaterialise failed: " + causes(error));
      System.err.flush();
      Runtime.getRuntime().halt(2);
    }
  }

  private static void run(String[] args) throws Exception {
    JsonNode spec = JSON.readTree(new File(args[0]));
    long deadline = System.currentTimeMillis() + spec.path("timeoutSeconds").asLong(240) * 1000;
    JsonNode tables = spec.get("tables");

    // One mini-cluster for every table's job (a local TableEnvironment would start one per job).
    Configuration clusterConfig = new Configuration();
    clusterConfig.setString("taskmanager.memory.managed.size", "32m");
    clusterConfig.setString("taskmanager.memory.network.min", "32m");
    clusterConfig.setString("taskmanager.memory.network.max", "32m");
    clusterConfig.setString("rest.bind-address", "127.0.0.1");
    clusterConfig.setString("rest.bind-port", "0");
    MiniCluster cluster = new MiniCluster(new MiniClusterConfiguration.Builder()
        .setConfiguration(clusterConfig)
        .setNumTaskManagers(1)
        .setNumSlotsPerTaskManager(Math.max(1, tables.size()))
        .build());
    cluster.start();
    URI rest = cluster.getRestAddress().get();

    Configuration config = new Configuration();
    config.setString("execution.runtime-mode", "streaming");
    config.setString("execution.target", "remote");
    config.setString("rest.address", rest.getHost());
    config.setString("rest.port", String.valueOf(rest.getPort()));
    config.setString("parallelism.default", "1");
    TableEnvironment env = TableEnvironment.create(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(config).build());

    List<String> topics = new ArrayList<>();
    tables.forEach(table -> topics.add(table.get("topic").asText()));
    Map<String, Map<Integer, Long>> lastOffsets = lastOffsets(spec.get("brokers").asText(), topics);
    List<Materialised> jobs = new ArrayList<>();
    for (JsonNode table : tables) {
      List<String> key = new ArrayList<>();
      table.get("key").forEach(k -> key.add(k.asText()));
      String name = table.get("name").asText();
      String primaryKey = String.join(", ", key.stream().map(k -> "`" + k + "`").toList());
      String format = table.path("format").asText("debezium-avro-confluent");
      // A plain Avro topic is insert-only: Flink refuses a primary key there (the map is still keyed by `key`).
      String constraint = format.startsWith("debezium-") ? ", PRIMARY KEY (" + primaryKey + ") NOT ENFORCED" : "";
      // Where each record came from: the job has read its topic through once it read each partition's last record.
      String origin = ", `" + PARTITION + "` INT METADATA FROM 'partition' VIRTUAL, `" + OFFSET + "` BIGINT METADATA FROM 'offset' VIRTUAL";
      env.executeSql("CREATE TABLE `" + name + "` (" + table.get("columns").asText() + origin + constraint + ") WITH ("
          + option("connector", "kafka") + ", "
          + option("topic", table.get("topic").asText()) + ", "
          + option("properties.bootstrap.servers", spec.get("brokers").asText()) + ", "
          + option("properties.group.id", "flink-" + name + "-" + System.nanoTime()) + ", "
          // Sluice writes in Kafka transactions: read only committed records, as for any transactional producer.
          + option("properties.isolation.level", "read_committed") + ", "
          + option("scan.startup.mode", "earliest-offset") + ", "
          + option("format", format) + ", "
          + option(format + ".url", table.path("registry").asText(spec.path("registry").asText())) + ")");
      Materialised job = new Materialised(name, key, lastOffsets.get(table.get("topic").asText()));
      jobs.add(job);
      try {
        TableResult result = env.executeSql("SELECT * FROM `" + name + "`");
        job.iterator = result.collect();
      } catch (Exception error) {
        job.error = causes(error);
        continue;
      }
      Thread reader = new Thread(() -> {
        try {
          while (job.iterator.hasNext()) {
            job.apply(job.iterator.next());
          }
        } catch (Throwable error) {
          if (job.error == null && !done) job.error = causes(error);
        }
      }, "read-" + name);
      reader.setDaemon(true);
      reader.start();
    }

    for (;;) {
      Thread.sleep(100);
      if (jobs.stream().allMatch(j -> j.error != null || j.readThrough()) || System.currentTimeMillis() >= deadline) break;
    }
    done = true;

    ObjectNode out = JSON.createObjectNode();
    for (Materialised job : jobs) {
      ObjectNode table = out.putObject(job.name);
      table.put("changes", job.changes.get());
      if (job.error != null) table.put("error", job.error);
      ArrayNode rows = table.putArray("rows");
      synchronized (job.state) {
        for (Row row : job.state.values()) {
          ObjectNode object = rows.addObject();
          for (String field : row.getFieldNames(true)) {
            if (!field.equals(PARTITION) && !field.equals(OFFSET)) object.set(field, renderNode(row.getField(field)));
          }
        }
      }
    }
    System.out.println(JSON.writeValueAsString(out));
    System.out.flush();
    for (Materialised job : jobs) {
      try {
        if (job.iterator != null) job.iterator.close();
      } catch (Exception ignored) {
        // The job is cancelled either way; the process exits next.
      }
    }
    Runtime.getRuntime().halt(0);
  }

  private static volatile boolean done = false;
  private static final String PARTITION = "sluice_test_partition";
  private static final String OFFSET = "sluice_test_offset";

  /**
   * Per topic and partition, the offset of its last committed record with a value (a tombstone is
   * no change for Flink's formats; transaction markers are no records), read with a consumer of its own.
   */
  private static Map<String, Map<Integer, Long>> lastOffsets(String brokers, List<String> topics) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    Map<String, Map<Integer, Long>> last = new TreeMap<>();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = new ArrayList<>();
      for (String topic : topics) {
        last.put(topic, new TreeMap<>());
        consumer.partitionsFor(topic, Duration.ofSeconds(30)).forEach(p -> partitions.add(new TopicPartition(topic, p.partition())));
      }
      Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(30));
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      // Topics of a test are small: read them whole, up to their ends at the start.
      long deadline = System.currentTimeMillis() + 60_000;
      while (partitions.stream().anyMatch(p -> consumer.position(p) < ends.get(p))) {
        if (System.currentTimeMillis() > deadline) throw new IllegalStateException("reading the topics to their ends took over 60 s");
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
          if (record.value() != null && record.offset() < ends.get(new TopicPartition(record.topic(), record.partition()))) last.get(record.topic()).put(record.partition(), record.offset());
        }
      }
    }
    return last;
  }

  private static String option(String key, String value) {
    return "'" + key.replace("'", "''") + "' = '" + value.replace("'", "''") + "'";
  }

  private static String causes(Throwable error) {
    StringBuilder text = new StringBuilder();
    for (Throwable cause = error; cause != null && text.length() < 4000; cause = cause.getCause()) {
      if (text.length() > 0) text.append(" <- ");
      text.append(cause.getClass().getSimpleName()).append(": ").append(cause.getMessage());
    }
    return text.toString();
  }

  private static String render(Object value) {
    if (value == null) return null;
    if (value instanceof BigDecimal decimal) return decimal.toPlainString();
    if (value instanceof byte[] bytes) return HexFormat.of().formatHex(bytes);
    return value.toString();
  }

  private static JsonNode renderNode(Object value) {
    if (value instanceof Object[] array) {
      ArrayNode list = JSON.createArrayNode();
      for (Object element : array) list.add(renderNode(element));
      return list;
    }
    if (value instanceof Row row) {
      java.util.Set<String> names = row.getFieldNames(true);
      if (names == null) {
        ArrayNode list = JSON.createArrayNode();
        for (int i = 0; i < row.getArity(); i++) list.add(renderNode(row.getField(i)));
        return list;
      }
      ObjectNode object = JSON.createObjectNode();
      for (String name : names) object.set(name, renderNode(row.getField(name)));
      return object;
    }
    if (value instanceof Map<?, ?> map) {
      ObjectNode object = JSON.createObjectNode();
      for (Map.Entry<?, ?> entry : map.entrySet()) object.set(String.valueOf(entry.getKey()), renderNode(entry.getValue()));
      return object;
    }
    String text = render(value);
    return text == null ? JSON.nullNode() : JSON.getNodeFactory().textNode(text);
  }
}
