-- Base tables of the differential suite on MariaDB (tests/differential.rs): each case
-- creates its base table twice, in two fresh databases, from its section below.
-- `-- table: NAME key=COL`: COL is the integer key column the concurrent writer uses;
-- every table has a column `w` that only the writer writes and no writer case alters.
-- Every NOT NULL column except the key has a default (the writer inserts key and w only).
-- Keys of the base rows are 100000 and up (one row of uk has key 0): the writer moves
-- keys below 100000 and inserts from 1000000 up.
-- Rows: row 1 holds the minimum of every column, row 2 the maximum, row 3 NULLs (or
-- zeros), the others varied values (unicode, zero dates, fractions).

-- table: num key=id
CREATE TABLE num (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  ti TINYINT NULL,
  tu TINYINT UNSIGNED NOT NULL DEFAULT 0,
  si SMALLINT NULL,
  su SMALLINT UNSIGNED NULL,
  mi MEDIUMINT NULL,
  mu MEDIUMINT UNSIGNED NULL,
  i INT NOT NULL DEFAULT 0,
  iu INT UNSIGNED NULL,
  bi BIGINT NULL,
  bu BIGINT UNSIGNED NULL,
  d1 DECIMAL(10,2) NULL,
  d2 DECIMAL(30,10) NOT NULL DEFAULT 0.0000000001,
  du DECIMAL(6,0) UNSIGNED NULL,
  f FLOAT NULL,
  fd FLOAT(7,3) NULL,
  db DOUBLE NULL,
  b1 BIT(1) NULL,
  b8 BIT(8) NOT NULL DEFAULT b'101',
  b64 BIT(64) NULL,
  bo BOOLEAN NOT NULL DEFAULT FALSE,
  ex INT NULL DEFAULT (i * 2 + 1),
  g1 BIGINT AS (i + 1) VIRTUAL,
  g2 DECIMAL(12,2) AS (d1 * 2) STORED,
  w INT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_bu (bu),
  KEY idx_i (i),
  KEY idx_si_mi (si DESC, mi),
  KEY idx_g1 (g1),
  CONSTRAINT chk_tu CHECK (tu < 250),
  CHECK (i > -1000000)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='numbers of every width';
INSERT INTO num (id, ti, tu, si, su, mi, mu, i, iu, bi, bu, d1, d2, du, f, fd, db, b1, b8, b64, bo, ex)
SELECT 100000 + seq * 3 + (seq % 7 = 0),
  CASE seq WHEN 1 THEN -128 WHEN 2 THEN 127 WHEN 3 THEN NULL ELSE seq % 200 - 100 END,
  CASE seq WHEN 1 THEN 0 WHEN 2 THEN 249 WHEN 3 THEN 0 ELSE seq % 250 END,
  CASE seq WHEN 1 THEN -32768 WHEN 2 THEN 32767 WHEN 3 THEN NULL ELSE seq * 100 - 15000 END,
  CASE seq WHEN 1 THEN 0 WHEN 2 THEN 65535 WHEN 3 THEN NULL ELSE seq * 200 END,
  CASE seq WHEN 1 THEN -8388608 WHEN 2 THEN 8388607 WHEN 3 THEN NULL ELSE seq * 1000 - 150000 END,
  CASE seq WHEN 1 THEN 0 WHEN 2 THEN 16777215 WHEN 3 THEN NULL ELSE seq * 50000 END,
  CASE seq WHEN 1 THEN -999999 WHEN 2 THEN 2147483647 WHEN 3 THEN 0 ELSE seq * 7 - 1000 END,
  CASE seq WHEN 1 THEN 0 WHEN 2 THEN 4294967295 WHEN 3 THEN NULL ELSE seq * 1000003 END,
  CASE seq WHEN 1 THEN -9223372036854775808 WHEN 2 THEN 9223372036854775807 WHEN 3 THEN NULL ELSE seq * seq * 1000000007 - 50000000000 END,
  CASE WHEN seq = 1 THEN 0 WHEN seq = 2 THEN 18446744073709551615 WHEN seq = 3 OR seq % 10 = 5 THEN NULL ELSE seq * 3000000000000 END,
  CASE seq WHEN 1 THEN -99999999.99 WHEN 2 THEN 99999999.99 WHEN 3 THEN NULL ELSE seq * 3.14 - 400 END,
  CASE seq WHEN 1 THEN -99999999999999999999.9999999999 WHEN 2 THEN 99999999999999999999.9999999999 WHEN 3 THEN 0 ELSE seq / 7 END,
  CASE seq WHEN 1 THEN 0 WHEN 2 THEN 999999 WHEN 3 THEN NULL ELSE seq * 17 END,
  CASE seq WHEN 1 THEN -3.40282e38 WHEN 2 THEN 3.40282e38 WHEN 3 THEN NULL WHEN 4 THEN 1.17549e-38 ELSE seq * 1.1 END,
  CASE seq WHEN 1 THEN -9999.999 WHEN 2 THEN 9999.999 WHEN 3 THEN NULL ELSE seq / 3 END,
  CASE seq WHEN 1 THEN -1.7976931348623157e308 WHEN 2 THEN 1.7976931348623157e308 WHEN 3 THEN NULL WHEN 4 THEN 2.2250738585072014e-308 ELSE seq * PI() END,
  CASE seq WHEN 1 THEN 0 WHEN 2 THEN 1 WHEN 3 THEN NULL ELSE seq % 2 END,
  CASE seq WHEN 1 THEN 0 WHEN 2 THEN 255 WHEN 3 THEN 5 ELSE seq % 256 END,
  CASE seq WHEN 1 THEN 0 WHEN 2 THEN 18446744073709551615 WHEN 3 THEN NULL ELSE seq * 1234567 END,
  seq % 2,
  IF(seq % 5 = 0, NULL, seq)
FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_300) s;
-- auto-increment with a gap at the top: the counter (101001) is above the largest id (100901)
INSERT INTO num (id) VALUES (101000);
DELETE FROM num WHERE id = 101000;

-- table: txt key=k1
CREATE TABLE txt (
  k1 INT NOT NULL,
  k2 VARCHAR(20) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'k',
  c CHAR(10) CHARACTER SET latin1 NULL,
  v VARCHAR(100) COLLATE utf8mb4_unicode_ci NULL,
  vb VARCHAR(40) COLLATE utf8mb4_bin NULL,
  v3 VARCHAR(60) CHARACTER SET utf8mb3 NULL,
  vl VARCHAR(120) CHARACTER SET latin1 COLLATE latin1_german1_ci NOT NULL DEFAULT '',
  tt TINYTEXT NULL,
  t TEXT NULL,
  mt MEDIUMTEXT NULL,
  bn BINARY(8) NULL,
  vbn VARBINARY(64) NULL,
  bl BLOB NULL,
  j JSON NULL,
  e ENUM('a','b','c') NOT NULL DEFAULT 'a',
  s SET('x','y','z') NULL DEFAULT 'x,y',
  u UUID NULL,
  ip INET6 NULL,
  gv VARCHAR(60) AS (CONCAT(k1, ':', IFNULL(vb, ''))) VIRTUAL,
  w INT NULL,
  PRIMARY KEY (k1, k2),
  UNIQUE KEY uq_vb (vb),
  KEY idx_t (t(10)),
  KEY idx_v_c (v(20), c DESC),
  CONSTRAINT chk_len CHECK (CHAR_LENGTH(v) <= 90)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO txt (k1, k2, c, v, vb, v3, vl, tt, t, mt, bn, vbn, bl, j, e, s, u, ip)
SELECT 100000 + seq DIV 2, CONCAT('k', seq % 2),
  CASE WHEN seq = 3 THEN NULL WHEN seq % 4 = 0 THEN 'Größe' WHEN seq % 4 = 1 THEN CONCAT('c', seq, '  ') ELSE CONCAT('ç', seq) END,
  CASE WHEN seq = 3 THEN NULL WHEN seq = 2 THEN REPEAT('abc', 30) ELSE ELT(seq % 8 + 1, 'héllo wörld', '漢字かな交じり文', '😀 emoji 🎉', 'עברית', 'é combining é', 'trailing ', '', CONCAT('plain ', seq)) END,
  IF(seq % 9 = 0, NULL, CONCAT('vb', seq, IF(seq % 2, 'Ä', 'ä'))),
  IF(seq = 3, NULL, CONCAT(ELT(seq % 4 + 1, 'café', 'Ωmega', 'naïve', 'ĳ'), ' ', seq)),
  CONCAT(ELT(seq % 3 + 1, 'Straße', 'Müller', 'Ärger'), ' ', seq),
  IF(seq % 6 = 0, NULL, CONCAT('tiny ', seq)),
  IF(seq = 3, NULL, REPEAT(CONCAT('text ', seq, ' '), seq % 20)),
  CASE WHEN seq = 5 THEN REPEAT('mediumtext ', 9000) WHEN seq % 7 = 0 THEN NULL ELSE REPEAT('m', seq * 10) END,
  IF(seq = 3, NULL, UNHEX(LPAD(HEX(seq), 16, '0'))),
  IF(seq % 8 = 0, NULL, UNHEX(SHA1(seq))),
  IF(seq % 4 = 0, NULL, UNHEX(REPEAT(SHA2(seq, 256), seq % 5))),
  CASE WHEN seq = 3 THEN NULL WHEN seq % 11 = 0 THEN '[]' WHEN seq % 11 = 1 THEN 'null' WHEN seq % 11 = 2 THEN '"str"' WHEN seq % 11 = 4 THEN '1.5'
       ELSE JSON_OBJECT('n', seq, 's', CONCAT('v', seq), 'a', JSON_ARRAY(seq, seq * 2), 'u', '😀') END,
  ELT(seq % 3 + 1, 'a', 'b', 'c'),
  ELT(seq % 5 + 1, '', 'x', 'y,z', 'x,y,z', NULL),
  IF(seq % 6 = 0, NULL, CONCAT_WS('-', SUBSTR(MD5(seq), 1, 8), SUBSTR(MD5(seq), 9, 4), CONCAT('4', SUBSTR(MD5(seq), 14, 3)), CONCAT('a', SUBSTR(MD5(seq), 18, 3)), SUBSTR(MD5(seq), 21, 12))),
  CASE WHEN seq % 5 = 0 THEN NULL WHEN seq % 2 = 0 THEN CONCAT('2001:db8::', HEX(seq)) ELSE CONCAT('::ffff:192.0.2.', seq % 250) END
FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_300) s;

-- table: tm key=id
CREATE TABLE tm (
  id BIGINT NOT NULL,
  d DATE NULL,
  dz DATE NOT NULL DEFAULT '0000-00-00',
  dt DATETIME NULL,
  dt6 DATETIME(6) NULL,
  dtz DATETIME(2) NOT NULL DEFAULT '0000-00-00 00:00:00.00',
  ts TIMESTAMP(3) NULL DEFAULT NULL,
  tsc TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  tm TIME NULL,
  tm4 TIME(4) NULL,
  y YEAR NULL,
  dd DATE NULL DEFAULT (CURRENT_DATE + INTERVAL 1 DAY),
  w INT NULL,
  PRIMARY KEY (id),
  KEY idx_dt6 (dt6 DESC),
  UNIQUE KEY uq_d_tm (d, tm),
  KEY idx_ts (ts),
  CONSTRAINT chk_y CHECK (y IS NULL OR y >= 1970)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO tm (id, d, dz, dt, dt6, dtz, ts, tsc, tm, tm4, y, dd)
SELECT 100000 + seq * 10,
  CASE seq WHEN 1 THEN '1000-01-01' WHEN 2 THEN '9999-12-31' WHEN 3 THEN NULL WHEN 4 THEN '0000-00-00' WHEN 5 THEN '2024-02-29' ELSE '2000-01-01' + INTERVAL seq DAY END,
  CASE WHEN seq % 3 = 0 THEN '0000-00-00' WHEN seq = 7 THEN '2021-00-00' ELSE '2020-01-01' + INTERVAL seq WEEK END,
  CASE seq WHEN 1 THEN '1000-01-01 00:00:00' WHEN 2 THEN '9999-12-31 23:59:59' WHEN 3 THEN NULL WHEN 4 THEN '0000-00-00 00:00:00' ELSE '2001-02-03 04:05:06' + INTERVAL (seq * 3601) SECOND END,
  CASE seq WHEN 1 THEN '1000-01-01 00:00:00.000000' WHEN 2 THEN '9999-12-31 23:59:59.999999' WHEN 3 THEN NULL ELSE '2010-06-15 12:00:00.5' + INTERVAL (seq * 1001) MICROSECOND + INTERVAL seq MINUTE END,
  CASE WHEN seq % 4 = 0 THEN '0000-00-00 00:00:00.00' ELSE '2015-01-01 00:00:00.25' + INTERVAL seq HOUR END,
  CASE seq WHEN 1 THEN '1970-01-01 00:00:01.000' WHEN 2 THEN '2038-01-19 03:14:07.999' WHEN 3 THEN NULL ELSE '2021-03-28 00:30:00.123' + INTERVAL (seq * 599) SECOND END,
  '2020-01-01 00:00:00' + INTERVAL seq HOUR,
  CASE seq WHEN 1 THEN '-838:59:59' WHEN 2 THEN '838:59:59' WHEN 3 THEN NULL ELSE SEC_TO_TIME(seq * 97) END,
  CASE seq WHEN 1 THEN '-838:59:59.0000' WHEN 2 THEN '838:59:59.9999' WHEN 3 THEN NULL ELSE SEC_TO_TIME(seq * 97 + 0.1234) END,
  CASE seq WHEN 1 THEN 1970 WHEN 2 THEN 2155 WHEN 3 THEN NULL ELSE 1970 + seq % 180 END,
  IF(seq % 10 = 0, NULL, '2030-01-01' + INTERVAL seq DAY)
FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_300) s;

-- table: uk key=a
CREATE TABLE uk (
  a INT NOT NULL,
  b VARCHAR(30) NOT NULL DEFAULT '',
  c INT NULL,
  n INT NOT NULL DEFAULT 0,
  s VARCHAR(20) NULL,
  w INT NULL,
  UNIQUE KEY uq_a (a),
  UNIQUE KEY uq_bc (b, c),
  KEY idx_c (c)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO uk (a, b, c, n, s)
SELECT IF(seq = 1, 0, 100000 + seq * 2), CONCAT('b', seq % 50), IF(seq % 13 = 0, NULL, seq DIV 50), seq % 10, IF(seq % 3 = 0, NULL, CONCAT('s', seq, 'é'))
FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_200) s;

-- table: big key=id
-- Twenty thousand rows with a secondary unique key, for the writer that moves keys forwards.
CREATE TABLE big (
  id INT NOT NULL,
  u INT NULL,
  v VARCHAR(20) NULL,
  w INT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_u (u)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO big (id, u, v) SELECT 100000 + seq * 2, seq, CONCAT('v', seq) FROM seq_1_to_20000;
