"""The words of the interview rehearsal, in English and in Chinese (the seed's language).

Kept apart from the logic (:mod:`seckill.course.rehearsal`) so a translator edits one
file and a test can check that both languages say the same things (same keys).

Templates quote figures by name in braces, e.g. ``{t1_rps}``: the figure of
:data:`seckill.measure.results.FIGURES`, written with its unit and marked "(yours)", or
"(not measured yet: run `make bench`)" when no record holds it. ``{chaos_<scenario>}``
is the verdict of one failure lab, ``{grade_<lab>}`` the state of one graded lab,
``{chaos_all}`` every failure lab run so far. The seed's own figures are written
out in the text and marked "(seed)" / "（原文）".
"""

from __future__ import annotations

# Numbers the seed itself states (000_4bb366aace2e1692.txt); the only numbers a
# script or card may contain besides the learner's records (a test holds us to it).
SEED_FIGURES = frozenset({3, 4, 5, 10, 20, 30, 50, 60, 100, 150, 300, 1000, 5000, 10000, 15000, 25000, 50000,
                          100000})
# HTTP status codes quoted in answers: protocol, not measurements.
PROTOCOL_NUMBERS = frozenset({409, 429, 503})

PART_ORDER = ("opening", "design", "depth", "close")
PART_SECONDS = {"opening": 30, "design": 60, "depth": 60, "close": 30}
CARD_ORDER = ("kafka", "spamming", "redis_down", "oversell", "scale_out", "failure_labs")
LANGS = ("en", "zh")

# figure name → unit key (the units are words, so they are translated below)
FIGURE_UNITS = {
    "cpu_count": "cores", "t0_rps": "rps", "t0_p99": "ms", "t1_rps": "rps", "t1_p50": "ms", "t1_p99": "ms",
    "t2_rps": "rps", "t3_rps": "rps", "t3_p99": "ms", "t4_rps": "rps", "redis_ops": "ops", "pg_tx": "tx",
    "nginx_rps": "rps", "drain_batched": "orders", "drain_one": "orders", "drain_ratio": "x",
    "confirms_pipelined": "confirms", "confirms_per_request": "confirms", "confirms_ratio": "x",
    "failover_s": "s", "backlog_depth": "msgs", "backlog_drain": "orders",
}

TEXT: dict[str, dict] = {
    "en": {
        "yours": "(yours)",
        "seed": "(seed)",
        "missing": "(not measured yet: run `{how}`)",
        "units": {"cores": "cores", "rps": "req/s", "ms": "ms", "ops": "ops/s", "tx": "transactions/s",
                  "orders": "orders/s", "x": "×", "confirms": "confirmed publishes/s", "s": "s",
                  "msgs": "messages"},
        "chaos": {
            "held": "every invariant held",
            "broke": "an invariant broke ({checks})",
            "missing": "not run yet: run `seckill chaos {scenario}`",
            "none": "You have not run a failure lab yet: run `seckill chaos redis-down` (or any of: {all}).",
        },
        "grade": {
            "passed": "passed {score} on {date}",
            "failed": "not passed yet ({score}): fix it and run `seckill grade {lab}`",
            "reference": "only the reference was graded: grade yours with `seckill grade {lab}`",
            "missing": "not graded yet: run `seckill grade {lab}`",
        },
        "ui": {
            "title": "Interview rehearsal",
            "language": "Language",
            "start": "start the clock",
            "left": "{s} s left",
            "up": "Time's up: stop talking, then read the script below and compare.",
            "notes": "Key words you will say in this part (write them, then say them aloud against the clock)…",
            "prompt": "What to cover",
            "script": "Your script, with your numbers",
            "answer": "Your answer first: the model answer opens only after you have written one…",
            "reveal": "reveal the model answer",
            "refused": "Write your answer first: the model answer stays hidden until you have committed to one.",
            "seed_says": "The seed says",
            "model": "Model answer",
            "with_yours": "With your numbers",
            "rate": "Rate yourself",
            "rate_help": "1 = lost · 3 = the idea, not the numbers · 5 = interview-ready",
            "save": "save this attempt",
            "saved": "Saved to {path} (earlier attempts are kept, one file each).",
            "sources": "Where your numbers come from",
            "no_sources": "No measurements yet: every figure above says what to run to produce it.",
            "no_ratings": "No saved attempt with a rating yet: rate a card, save, and come back.",
        },
        "framework": [
            ("Clarify requirements", "What does it do? QPS? Latency? Consistency?", "features + performance targets"),
            ("Estimate capacity", "Traffic, storage, bandwidth", "the bottleneck"),
            ("Design the architecture", "Modules and how they talk", "the architecture diagram"),
            ("Optimise in depth", "How to break the bottleneck", "technology choices"),
            ("Discuss extensions", "Failures, trade-offs", "trade-off analysis"),
        ],
        "decisions": [
            ("Concurrency control", "10,000 QPS hit the database (seed)", "rate limits in the application",
             "the database takes about 1,000 QPS (seed)"),
            ("Stock deduction", "concurrent overselling", "pre-decrement in Redis + asynchronous confirmation",
             "atomic operations + answers within a second"),
            ("Result notification", "users blocked while the order is written", "asynchronous processing via MQ",
             "decoupling + peak shaving"),
        ],
        "parts": {
            "opening": {
                "title": "Opening",
                "prompt": "Set the scale and name the bottleneck: the peak, how fast the stock goes, and the one "
                          "thing that breaks first. Quote one number you measured yourself.",
                "script": "Assume 10,000 QPS (seed), with 100,000 items sold out in 10 s (seed). The core "
                          "bottleneck is **concurrent writes to the stock counter**. On my machine PostgreSQL, "
                          "every buy locking the same stock row, managed {pg_tx}, and the database-only design "
                          "served {t0_rps}.",
            },
            "design": {
                "title": "Design",
                "prompt": "Draw the two paths, fast and asynchronous, and justify each box with a number: why "
                          "Redis before the database, why a queue, why limits.",
                "script": "The architecture has a **fast path** and an **async path**. Fast path: nginx rate "
                          "limit → Flask → Redis pre-decrement → answer (under 50 ms, seed). Async path: RabbitMQ "
                          "→ order service → PostgreSQL. Why? Redis does 100,000+ ops/s and the database about "
                          "1,000 (seed); I measured a Redis Lua reservation at {redis_ops} against PostgreSQL's "
                          "{pg_tx}. The queue decouples: the order service writes {drain_batched} behind a fast "
                          "path that answered at p99 {t1_p99}. Rate limits stop an avalanche.",
            },
            "depth": {
                "title": "Depth",
                "prompt": "Go one level deeper: can it oversell, where can an order be lost, and what do you "
                          "change when the traffic grows five times?",
                "script": "Can it oversell? With one atomic Redis script, racing buyers cannot (my race lab: "
                          "{chaos_race}). But if the publish to the queue fails, the order is lost, so reconciliation "
                          "compensates (my crash-between lab: {chaos_crash_between}). If QPS rises to 50,000 (seed), "
                          "add Flask instances or switch to async FastAPI. I measured {t1_rps} on one Flask "
                          "process, {t2_rps} on four behind nginx and {t3_rps} on FastAPI, on {cpu_count}.",
            },
            "close": {
                "title": "Close",
                "prompt": "Failures and trade-offs: what breaks, how you notice, how you recover. End on the rule.",
                "script": "Failure handling: Redis primary–replica failover (under 30 s, seed; mine took "
                          "{failover_s}), an alert on queue backlog (my backlog lab peaked at {backlog_depth}), "
                          "read/write splitting for the database. My rule: the bottleneck decides the design, "
                          "trade-offs pick the technology, YAGNI stops over-engineering.",
            },
        },
        "cards": {
            "kafka": {
                "question": "Why RabbitMQ and not Kafka?",
                "hint": "What each one is built for, what an order needs, and why the bigger tool is not the "
                        "better one here.",
                "model": "RabbitMQ acknowledges every message (consumer acks, publisher confirms), which fits "
                         "real-time orders: one message is one paid item and must not vanish. Kafka is a "
                         "distributed log built for very high throughput and replay; for this sale it is "
                         "over-engineering (YAGNI). The choice flips when you need replay, many independent "
                         "consumers of the same events, or far more events than orders.",
                "yours": "RabbitMQ took {confirms_pipelined} with pipelined confirms against "
                         "{confirms_per_request} waiting for each confirm, a ratio of {confirms_ratio}; your order service "
                         "wrote {drain_batched} in batches. Is that enough for 100,000 items in 10 s (seed)?",
            },
            "spamming": {
                "question": "One user (or a bot) hammers the buy button. What stops them?",
                "hint": "Layers from the cheapest to the strongest, the limits you would set, and what the user "
                        "sees.",
                "model": "Layered limits: per user (5 per 10 s) → per IP (100 per 10 s) → device fingerprint → "
                         "CAPTCHA (optional). Each layer answers 429 with Retry-After, cheaply, before the stock is "
                         "touched. And whatever gets through, the buyers set in the reservation script makes a "
                         "second purchase impossible: 409 already_bought.",
                "yours": "Your labs: token bucket {grade_token_bucket}; user and IP limits {grade_rate_limit}; one "
                         "item per user {grade_stock}.",
            },
            "redis_down": {
                "question": "Redis goes down in the middle of the sale. What happens, and what do you do?",
                "hint": "What the user sees in that second, what is never lost, how Redis comes back, and how its "
                        "stock is made right again.",
                "model": "Primary–replica failover under Sentinel (under 30 s). Meanwhile degrade rather than "
                         "guess: answer 503, or sell from a small allowance held in local memory. Then reconcile: "
                         "rebuild the stock from PostgreSQL (stock minus the orders written) before selling again. "
                         "Orders already in the queue are safe; reservations not yet published are released.",
                "yours": "Redis stopped mid-sale: {chaos_redis_down}. Primary killed with Sentinel watching: "
                         "{chaos_redis_failover}; the failover took {failover_s}.",
            },
            "oversell": {
                "question": "Name the three ways this system can oversell or lose orders, and what stops each.",
                "hint": "The three places where the reservation in Redis and the order in PostgreSQL can part "
                        "ways.",
                "model": "1) A concurrent race: check-then-decrement in two steps lets buyers read the same stock; "
                         "one atomic Lua script (check, DECR, remember the buyer) closes it. 2) Redis fails: a "
                         "restarted Redis forgets reservations or comes back with the wrong stock; rebuild it from "
                         "PostgreSQL, and keep the guarded UPDATE (stock > 0) in the database as the last guard. "
                         "3) The message is lost: the reservation succeeded but the publish failed, or the consumer "
                         "crashed; persistent messages with publisher confirms, release the reservation only when "
                         "the publish definitely failed (a confirm that timed out is unknown: keep the item, answer "
                         "pending), ack only after the commit, an idempotent insert, and reconciliation.",
                "yours": "Race: {chaos_race}. Redis down: {chaos_redis_down}. RabbitMQ down: {chaos_mq_down}. "
                         "Gateway killed between reservation and publish: {chaos_crash_between}. Order service "
                         "killed: {chaos_consumer_crash}.",
            },
            "scale_out": {
                "question": "Traffic grows to 50,000 QPS. What are your three ways to scale out, and what does "
                            "each cost?",
                "hint": "More of the same, a different kind of server, and moving the stock itself; name the next "
                        "ceiling each one hits.",
                "model": "1) More instances behind nginx (Flask × 4: 5,000 QPS, seed): cheap, but the shared "
                         "Redis becomes the next ceiling. 2) An async framework (FastAPI: 25,000 QPS, seed): one "
                         "event loop per core never waits idle on Redis and RabbitMQ. 3) Local stock (50,000 QPS, "
                         "seed): each instance sells from a slice of the stock held in memory; fastest, but the "
                         "slices must be rebalanced, and it is YAGNI until you truly need it.",
                "yours": "One Flask process {t1_rps}; four behind nginx {t2_rps}; FastAPI {t3_rps}; local stock "
                         "{t4_rps}. nginx alone, answering without any work, reached {nginx_rps}: the ceiling of "
                         "this machine.",
            },
            "failure_labs": {
                "question": "Tell me about a failure you tested yourself.",
                "hint": "What you broke, what you predicted, what the numbers showed, what held, what you changed.",
                "model": "A strong answer is a short story with numbers: what you broke and when, what the users "
                         "saw, which invariant you checked (nothing oversold, nothing lost), what it measured, and "
                         "what you would change. Pick your most surprising lab below and tell it that way.",
                "yours": "{chaos_all}",
            },
        },
    },
    # the same keys in Chinese (a translation table: its shape repeats "en" on purpose)
    "zh": {
        "yours": "（你的实测）",
        "seed": "（原文）",
        "missing": "（尚未测量：运行 `{how}`）",
        "units": {"cores": "核", "rps": "请求/秒", "ms": "毫秒", "ops": "次操作/秒", "tx": "事务/秒",
                  "orders": "订单/秒", "x": "倍", "confirms": "条确认消息/秒", "s": "秒", "msgs": "条消息"},
        "chaos": {
            "held": "所有不变量都成立",
            "broke": "有不变量被打破（{checks}）",
            "missing": "尚未运行：运行 `seckill chaos {scenario}`",
            "none": "你还没有做过故障实验：运行 `seckill chaos redis-down`（或其中任意一个：{all}）。",
        },
        "grade": {
            "passed": "已通过 {score}（{date}）",
            "failed": "尚未通过（{score}）：修改后运行 `seckill grade {lab}`",
            "reference": "只评测过参考实现：用 `seckill grade {lab}` 评测你自己的代码",
            "missing": "尚未评测：运行 `seckill grade {lab}`",
        },
        "ui": {
            "title": "面试演练",
            "language": "语言",
            "start": "开始计时",
            "left": "剩余 {s} 秒",
            "up": "时间到：停下来，再读下面的稿子对照一下。",
            "notes": "这一段你要说的关键词（先写下来，再对着计时大声说出来）……",
            "prompt": "要讲什么",
            "script": "你的讲稿（带你的实测数字）",
            "answer": "先写你的答案：写完之后才能看参考答案……",
            "reveal": "显示参考答案",
            "refused": "请先写下你的答案：在你给出自己的答案之前，参考答案保持隐藏。",
            "seed_says": "原文怎么说",
            "model": "参考答案",
            "with_yours": "你的实测数字",
            "rate": "自评",
            "rate_help": "1 = 讲不出来 · 3 = 思路对但没有数字 · 5 = 可以直接上面试",
            "save": "保存这次演练",
            "saved": "已保存到 {path}（之前的演练都会保留，每次一个文件）。",
            "sources": "你的数字来自哪里",
            "no_sources": "还没有任何测量：上面每个数字都写明了要运行什么来得到它。",
            "no_ratings": "还没有带自评的已保存演练：给一张卡片打分、保存，之后再回来看。",
        },
        "framework": [
            ("需求澄清", "做什么？QPS？延迟？一致性？", "功能 + 性能指标"),
            ("能力评估", "流量/存储/带宽计算", "瓶颈识别"),
            ("架构设计", "模块划分 + 交互流程", "架构图"),
            ("深度优化", "瓶颈破局方案", "技术选型"),
            ("扩展讨论", "故障处理 + 权衡对比", "Trade-off 分析"),
        ],
        "decisions": [
            ("并发控制", "10000 QPS 打数据库（原文）", "应用层限流", "DB 只能 1000 QPS（原文）"),
            ("库存扣减", "并发超卖", "Redis 预减 + 异步确认", "原子操作 + 秒级响应"),
            ("结果通知", "阻塞用户", "MQ 异步处理", "解耦 + 削峰"),
        ],
        "parts": {
            "opening": {
                "title": "开场",
                "prompt": "给出规模并点出瓶颈：峰值多少、库存多快卖完、最先扛不住的是什么。说出一个你自己测到的数字。",
                "script": "假设 10000 QPS（原文），10 秒卖完 100000 件（原文）。核心瓶颈是**库存扣减的并发写入**。"
                          "在我的机器上，每次购买都锁同一行库存的 PostgreSQL 只做到 {pg_tx}，只用数据库的方案撑到 {t0_rps}。",
            },
            "design": {
                "title": "方案",
                "prompt": "画出两条路径（快速路径和异步路径），每个方框都用一个数字说明理由：为什么先 Redis 后数据库、"
                          "为什么要队列、为什么要限流。",
                "script": "架构分**快速路径**和**异步路径**：快速路径是 Nginx 限流 → Flask → Redis 预减 → 返回"
                          "（< 50 毫秒，原文）；异步路径是 MQ → 订单服务 → DB 持久化。为什么这样设计？Redis 吞吐量 "
                          "100000+ QPS，DB 只有 1000 QPS（原文）；我实测 Redis Lua 预减是 {redis_ops}，PostgreSQL 是 "
                          "{pg_tx}。MQ 解耦，不阻塞用户：订单服务在后面写入 {drain_batched}，而快速路径的 p99 是 "
                          "{t1_p99}。限流防止雪崩。",
            },
            "depth": {
                "title": "深度",
                "prompt": "再深入一层：会不会超卖、订单会在哪里丢、流量涨到五倍时改什么。",
                "script": "可能超卖吗？用一个 Redis 原子脚本，并发抢购不会超卖（我的并发竞争实验：{chaos_race}）。但 MQ "
                          "发送失败会丢订单，需要对账补偿（我的“预减后发送前崩溃”实验：{chaos_crash_between}）。如果 QPS "
                          "升到 50000（原文）？增加 Flask 实例或切换 FastAPI 异步框架。我实测单个 Flask 进程 "
                          "{t1_rps}，Nginx 后面 4 个进程 {t2_rps}，FastAPI {t3_rps}，机器是 {cpu_count}。",
            },
            "close": {
                "title": "收尾",
                "prompt": "故障和权衡：什么会坏、怎么发现、怎么恢复。最后用黄金法则收尾。",
                "script": "故障处理：Redis 主从切换（< 30 秒，原文；我实测切换用了 {failover_s}）、MQ 队列堆积告警"
                          "（我的堆积实验最多积压 {backlog_depth}）、DB 读写分离。黄金法则：瓶颈定方案，权衡选技术，"
                          "YAGNI 防过度。",
            },
        },
        "cards": {
            "kafka": {
                "question": "为什么不用 Kafka？",
                "hint": "各自为什么而生、订单需要什么、为什么更大的工具在这里不是更好的选择。",
                "model": "RabbitMQ 支持 ACK 确认，适合实时订单。Kafka 是日志系统，吞吐量高但过度设计（YAGNI）。"
                         "补充：一条消息就是一件已售商品，不能丢，所以要消费者 ACK 和发布确认；当你需要回放、"
                         "多个独立消费者或远多于订单的事件量时，选择才会反过来。",
                "yours": "RabbitMQ 流水线发布确认达到 {confirms_pipelined}，逐条等待确认是 {confirms_per_request}"
                         "，比值 {confirms_ratio}；你的订单服务批量写入 {drain_batched}。这够 10 秒卖完 100000 件"
                         "（原文）吗？",
            },
            "spamming": {
                "question": "同一用户疯狂刷单？",
                "hint": "从最便宜到最强的几层防护、你会设的阈值，以及用户看到什么。",
                "model": "多层限流：用户级(10s/5次) → IP级(10s/100次) → 设备指纹 → 验证码（可选）。"
                         "补充：每一层都在碰库存之前便宜地返回 429 和 Retry-After；漏过去的请求，预减脚本里的"
                         "买家集合也保证同一用户买不到第二件：409 already_bought。",
                "yours": "你的实验：令牌桶 {grade_token_bucket}；用户级和 IP 级限流 {grade_rate_limit}；"
                         "每人限购一件 {grade_stock}。",
            },
            "redis_down": {
                "question": "Redis 挂了？",
                "hint": "那一秒用户看到什么、什么绝不会丢、Redis 怎么恢复、库存怎么重新对齐。",
                "model": "主从切换(< 30s) + 临时降级到本地内存 + 人工对账。补充：切换期间宁可返回 503 也不要猜；"
                         "恢复后先从 PostgreSQL 重建库存（库存减去已写入的订单）再继续卖；已进队列的订单是安全的，"
                         "还没发送的预减会被释放。",
                "yours": "销售中途停掉 Redis：{chaos_redis_down}。Sentinel 看守下杀掉主库：{chaos_redis_failover}；"
                         "切换用了 {failover_s}。",
            },
            "oversell": {
                "question": "超卖（或丢单）的 3 种场景是什么？分别怎么防？",
                "hint": "Redis 里的预减和 PostgreSQL 里的订单会在哪三个地方对不上。",
                "model": "超卖的3种场景：并发竞争 / Redis失败 / MQ丢失。原文：“用Redis原子操作理论上不会超卖，"
                         "但MQ发送失败会丢订单，需要对账补偿。”补充：一、并发竞争：先查后减分两步会让买家读到同一个"
                         "库存，用一个原子 Lua 脚本（检查、DECR、记住买家）解决；二、Redis 失败：重启后的 Redis 忘了"
                         "预减或库存不对，从 PostgreSQL 重建，并保留数据库里带条件的 UPDATE（stock > 0）作为最后防线；"
                         "三、MQ 丢失：预减成功但发送失败，或消费者崩溃，用持久化消息加发布确认、确定失败时才释放预减"
                         "（确认超时是“未知”而非失败：保留预减，答复 pending）、"
                         "提交后才 ACK、幂等插入和对账。",
                "yours": "并发竞争：{chaos_race}。Redis 宕机：{chaos_redis_down}。RabbitMQ 宕机：{chaos_mq_down}。"
                         "预减后发送前杀掉网关：{chaos_crash_between}。杀掉订单服务：{chaos_consumer_crash}。",
            },
            "scale_out": {
                "question": "如果 QPS 升到 50000？水平扩展的 3 个方案是什么，各有什么代价？",
                "hint": "多加同样的、换一种服务器、把库存本身挪走；说出每种方案碰到的下一个天花板。",
                "model": "水平扩展的3个方案：加实例 / 异步框架 / 本地库存。Flask 单机 1000 QPS → Flask × 4 + Nginx "
                         "5000 → FastAPI 异步 25000 → 本地库存 50000（超大规模，YAGNI）。补充：加实例便宜，但共享的 "
                         "Redis 成为下一个天花板；异步框架每个核一个事件循环，不会空等 Redis 和 RabbitMQ；本地库存"
                         "最快，但各实例的库存分片需要再平衡，真正需要之前都是 YAGNI。",
                "yours": "单个 Flask 进程 {t1_rps}；Nginx 后 4 个进程 {t2_rps}；FastAPI {t3_rps}；本地库存 "
                         "{t4_rps}。Nginx 什么都不做直接返回能到 {nginx_rps}：这是这台机器的天花板。",
            },
            "failure_labs": {
                "question": "讲一个你亲手测试过的故障。",
                "hint": "你弄坏了什么、你预测会怎样、数字显示了什么、什么守住了、你改了什么。",
                "model": "原文的收尾：“故障处理：Redis主从切换、MQ队列堆积告警、DB读写分离。”好的回答是一个带数字的"
                         "小故事：什么时候弄坏了什么、用户看到什么、检查了哪些不变量（不超卖、不丢单）、测到了什么、"
                         "你会改什么。从下面挑一个最让你意外的实验，这样讲出来。",
                "yours": "{chaos_all}",
            },
        },
    },
}
