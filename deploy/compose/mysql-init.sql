-- Run once when the MySQL volume is created (deploy/compose.yaml). The image creates the user
-- `sluice` with all privileges on `shop`; capture also needs to read the binlog and snapshot.
GRANT SELECT, RELOAD, SHOW DATABASES, LOCK TABLES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'sluice'@'%';

CREATE TABLE shop.products (
  id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  sku        VARCHAR(64) NOT NULL UNIQUE,
  name       VARCHAR(255) NOT NULL,
  price      DECIMAL(12, 2) NOT NULL,
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

INSERT INTO shop.products (sku, name, price) VALUES ('tea-01', 'Green tea', 4.20), ('cup-02', 'Cup', 7.90);
