"""中文 catalogue for seckill's tooling: English text -> its Chinese, as a Chinese backend engineer says it.

Keyed by the English text itself (see seckill.i18n): when an English string changes at its call site its
old entry no longer matches, the message shows in English, and tests/test_i18n.py names the string until
it is translated again. Graders whose every check and hint is here are listed in GRADERS_TRANSLATED.
"""

from __future__ import annotations

# Graders (services/course/graders/<name>.py) whose titles and hints are all translated; tests/test_i18n.py
# fails when one of their English strings has no entry here.
GRADERS_TRANSLATED = ("token_bucket", "rate_limit", "stock", "producer", "consumer")

# Every one-line error of the package is here too: the message of each `raise XError(f"…")` of a
# SeckillError (or the CLI's UserError), keyed by the f-string's source, "no product {product_id} in
# PostgreSQL"; seckill.i18n.tr_message fills the Chinese template with the values of the English message.
# tests/test_i18n.py fails when a message has no entry (a reworded one no longer finds its old entry).

ZH: dict[str, str] = {
    # -- the grader's report (services/course/grader.py) --------------------------------------------------
    "{passed} of {total} checks passed": "{total} 项检查通过了 {passed} 项",
    "{title} — lab {lab!r}, implementation {impl}": "{title}：实验 {lab!r}，实现来自 {impl}",
    "pass": "通过",
    "FAIL": "失败",
    "passed": "通过",
    "failed": "失败",
    "hint:": "提示：",
    "Hint:": "提示：",
    "hint": "提示",
    "seen:": "实际：",
    "check": "检查项",
    "result": "结果",
    "lab": "实验",
    "implementation": "实现",
    " — well done!": "，全部通过，漂亮！",
    "Not implemented yet — write {function} in {shown} (explained in {notebook}).":
        "还没实现：在 {shown} 里写 {function}（做法见 {notebook}）。",
    "Not implemented yet: {function} (see above).": "还没实现：{function}（见上）。",
    "skip": "跳过",
    "skipped: depends on “{check}”, which failed above": "跳过：它依赖的“{check}”在上面已经失败",
    " s": " 秒",
    "skipped": "跳过",
    "Your code ended the whole process (it killed itself, crashed inside a C library, or "
    "called exit) while this check ran: look for what your code does to its own process.":
        "这项检查运行时，你的代码让整个进程结束了（自己杀掉了自己、在某个 C 库里崩溃，或者调用了 exit）："
        "看看你的代码对它自己所在的进程做了什么。",
    "Your code printed without end while this check ran: look for a print inside a loop "
    "that never finishes.":
        "这项检查运行时，你的代码一直在不停地打印：找找有没有放在永不结束的循环里的 print。",
    "Timed out: something waits forever or loops without end. Look for a lock that is taken and "
    "never released, or a loop whose exit condition never becomes true.":
        "超时了：有地方在无限等待或死循环。找找有没有拿了锁却不释放的地方，或者退出条件永远不成立的循环。",
    "fix:": "修复：",
    # lab titles
    "Token bucket": "令牌桶",
    "Rate limits in Redis": "基于 Redis 的限流",
    "Stock reservation in Redis": "基于 Redis 的库存预减",
    "Order producer (RabbitMQ)": "订单生产者（RabbitMQ）",
    "Order consumer (PostgreSQL)": "订单消费者（PostgreSQL）",

    # -- services/course/graders/stock.py ----------------------------------------------------------------
    "Try your StockCache in the notebook against Redis and compare with what it should do.":
        "在 notebook 里对着 Redis 试一下你的 StockCache，和它应有的行为对比一下。",
    "set_stock / get_stock": "set_stock / get_stock",
    "decr_stock / incr_stock": "decr_stock / incr_stock",
    "try_reserve never leaves stock negative": "try_reserve 绝不能让库存变成负数",
    "try_reserve under 50 threads": "50 个线程并发 try_reserve",
    "reserve_once: ok / already_bought / sold_out": "reserve_once：ok / already_bought / sold_out",
    "reserve_once under 50 threads": "50 个线程并发 reserve_once",
    "release gives an item back once": "release 只能归还一次",
    "reserve_once: one buyer racing itself gets one item": "reserve_once：同一个买家自己和自己抢，也只能拿到一件",
    "release: one buyer's concurrent releases return one item": "release：同一个买家并发归还，只能还回一件",
    "reserve / release / restock / try_reserve raced together keep the books":
        "reserve / release / restock / try_reserve 混在一起并发，账依然对得上",
    "a connection lost after any command, then a retry: nothing lost or created":
        "任意一条命令之后连接断开、再重试：既不丢也不凭空多出",
    "get_stock reads back what set_stock stored, as an int.":
        "get_stock 要读回 set_stock 存进去的值，类型是 int。",
    "A product never loaded has no stock: get_stock says None.":
        "从没加载过库存的商品没有库存：get_stock 应返回 None。",
    "decr_stock and incr_stock return the NEW count; decr_stock does not stop at zero (below zero is "
    "how the naive version shows it oversold).":
        "decr_stock 和 incr_stock 返回的是操作之后的新值；decr_stock 减到 0 也不停（减成负数，"
        "正是朴素版本暴露超卖的方式）。",
    "try_reserve says yes while there is stock and no once it is gone.":
        "有库存时 try_reserve 返回成功，库存没了就返回失败。",
    "A refused reservation must leave no trace: whatever it took from the counter to find out, it puts "
    "back, so the stock at rest is never below zero.":
        "被拒绝的预减不能留下痕迹：为了判断而从计数器里扣掉的，要原样加回去，"
        "这样静止时的库存永远不会小于 0。",
    "Checking the stock and then taking it are two steps another request can slip between. Let ONE "
    "atomic Redis operation decide who gets an item, and base the answer on what it returned.":
        "先查库存再扣库存是两步，别的请求可以插在中间。让一个原子的 Redis 操作来决定谁抢到，"
        "并且以它的返回值作为判断依据。",
    "reserve_once tells three outcomes apart: the item is yours, you already have one, none left.":
        "reserve_once 要区分三种结果：抢到了、你已经买过了、卖完了。",
    "A successful reservation takes one item AND records the buyer; the others change nothing.":
        "成功的预减既要扣一件库存，又要记下买家；其余两种结果什么都不改。",
    "A product with no stock loaded has nothing to sell.": "没有加载库存的商品，没有东西可卖。",
    "Under concurrency, 'already bought?', 'any left?', 'take one' and 'remember the buyer' must happen "
    "as ONE step inside Redis; done as separate commands from Python, requests interleave between "
    "them.":
        "并发之下，“买过没有？”“还有没有？”“扣一件”“记下买家”必须在 Redis 里作为一步完成"
        "（比如一段 Lua 脚本）；从 Python 分成几条命令发，请求就会在命令之间交错，导致超卖或一人多单。",
    "At most one item per buyer, also when the SAME buyer's requests arrive at the same moment (a double "
    "click, a retrying client): Under concurrency, 'already bought?', 'any left?', 'take one' and "
    "'remember the buyer' must happen as ONE step inside Redis; done as separate commands from Python, "
    "requests interleave between them.":
        "每个买家最多一件，即使是同一个买家的多个请求同时到达（双击按钮、客户端重试）也一样：并发之下，"
        "“买过没有？”“还有没有？”“扣一件”“记下买家”必须在 Redis 里作为一步完成；从 Python 分成几条命令发，"
        "请求就会在命令之间交错。",
    "Every item is accounted for: stock + items held == loaded + restocked, whatever mix of reserve_once, "
    "release, try_reserve and incr_stock runs at the same time. Each method must change the count and the "
    "buyers together, in one step, and only when it really took or gave back an item.":
        "每一件都要有着落：库存 + 已被占的件数 == 加载的 + 补货的，不管 reserve_once、release、try_reserve "
        "和 incr_stock 怎样混在一起同时运行。每个方法都必须在一步之内同时修改计数和买家，"
        "而且只在真的拿走或还回了一件时才修改。",
    "release must give an item back exactly once, also when the same buyer's releases run at the same "
    "moment (a retried cancel): 'does this buyer hold one?' and 'give it back' must be one step, or two "
    "releases both see the buyer and both give an item back.":
        "release 必须恰好归还一次，即使同一个买家的多次归还同时运行（重试的取消操作）也一样："
        "“这个买家手里有没有一件？”和“还回去”必须是一步，否则两次 release 都看到这个买家，都还回一件。",
    "A connection can drop between any two commands your code sends. If reserving or releasing takes "
    "several commands, a drop in between leaves the count and the buyers disagreeing, and the caller's "
    "retry cannot repair it: make each decision one step inside Redis.":
        "你的代码发出的任意两条命令之间，连接都可能断开。如果预减或归还要用好几条命令，中间一断，"
        "计数和买家就对不上了，调用方的重试也修不好：让每个决定在 Redis 里一步完成。",
    "release gives the buyer's item back to stock and forgets the buyer.":
        "release 把买家占的那件还回库存，并把这个买家从记录里删掉。",
    "Only someone who really holds an item can give one back, and only once: otherwise a retried "
    "release creates stock out of nothing.":
        "只有真正占了一件的人才能归还，而且只能还一次（幂等）；否则一次重试的 release 就会凭空变出库存。",

    # -- services/course/graders/token_bucket.py ---------------------------------------------------------
    "Run your TokenBucket in the notebook with a hand-moved clock and compare with what it should do.":
        "在 notebook 里用手动拨动的时钟跑一下你的 TokenBucket，和它应有的行为对比一下。",
    "starts full": "新建的桶是满的",
    "rejects when empty": "桶空了就拒绝",
    "a rejected request spends nothing": "被拒绝的请求不消耗令牌",
    "never holds more than capacity": "桶里的令牌永远不超过 capacity",
    "refills by elapsed time at the rate": "按流逝的时间和速率补充令牌",
    "fractional refill adds up": "不足一个的令牌能累加起来",
    "safe under concurrent threads": "多线程并发下依然正确",
    "uses the injected clock": "只用注入的时钟",
    "a clock stepping back takes no tokens away": "时钟往回跳不会扣掉令牌",
    "A new bucket should let a whole burst through at once: it starts with as many tokens as it can hold.":
        "新建的桶应该能一下子放过一整波突发流量：它一开始就装满了令牌。",
    "When no time passes, a bucket can grant only the tokens it holds; after that it must say no "
    "(return False), until time refills it.":
        "时间不走的时候，桶只能放行它手里那些令牌；用完之后必须拒绝（返回 False），直到时间把令牌补回来。",
    "Tokens keep coming while a client is idle, but the bucket has a size: after any pause it holds at "
    "most `capacity` tokens, so the burst that follows is at most `capacity` requests.":
        "客户端空闲时令牌会一直往里加，但桶是有容量的：不管停了多久，桶里最多只有 `capacity` 个令牌，"
        "所以接下来的突发最多放过 `capacity` 个请求。",
    "An empty bucket must fill again as time passes, in proportion to the time elapsed since it was "
    "last topped up and to the rate; nothing runs in between, so bring it up to date when a request "
    "arrives.":
        "空桶要随着时间重新装满，补多少取决于距上次补充过去了多久以及速率；两次请求之间没有任何代码在跑，"
        "所以要在请求到来时把桶补到最新状态。",
    "Half a token is not a token: a request must wait until a whole one has built up.":
        "半个令牌不算令牌：请求必须等到攒够一整个才能放行。",
    "Partial tokens must add up: two quarter-second waits at 2 tokens/s make one whole token. Do not "
    "throw away the part of a token you cannot spend yet (nor the time it stands for).":
        "不足一个的令牌要能累加：速率 2 个/秒时，等两次 0.25 秒正好攒出一个完整的令牌。"
        "暂时花不掉的那部分令牌（以及它代表的时间）不能丢掉。",
    "Partial tokens must add up: two quarter-second waits at 2 tokens/s make one whole token. Do not "
    "throw away the part of a token you cannot spend yet (nor the time it stands for). Mind that float "
    "sums drift: ten 0.1 s refills add up to 0.9999999999999999.":
        "不足一个的令牌要能累加：速率 2 个/秒时，等两次 0.25 秒正好攒出一个完整的令牌。"
        "暂时花不掉的那部分令牌（以及它代表的时间）不能丢掉。注意浮点数累加会有误差："
        "十次 0.1 秒的补充加起来是 0.9999999999999999。",
    "A request for more tokens than the bucket holds must be refused.":
        "请求的令牌数比桶里现有的多，就必须拒绝。",
    "A refused request must leave the bucket exactly as it was: decide first, and only spend when the "
    "answer is yes. Otherwise a client hammering an empty bucket pushes its own recovery away.":
        "被拒绝的请求必须让桶保持原样：先判断，确定放行了才扣令牌。否则一个不停猛刷空桶的客户端，"
        "会把自己恢复的时间越推越远。",
    "Two threads can read the same token count, both decide there is enough, and both spend it. "
    "Reading, refilling and spending must happen as one step that no other thread can interleave with.":
        "两个线程可能读到同一个令牌数，都认为够用，然后都扣了一次。读取、补充、扣减必须作为一步完成，"
        "中间不能让别的线程插进来。",
    "Read the time only through the clock the bucket was given (the `clock` argument), never from the "
    "time module directly: tests and the notebook move that clock by hand.":
        "只通过传给桶的时钟（`clock` 参数）读时间，不要直接调用 time 模块：测试和 notebook 都是手动拨动这个时钟的。",
    "Time that goes backwards is no reason to take tokens away: a clock can step back (a wall clock "
    "corrected by NTP), and then no time has passed for the bucket, not a negative amount.":
        "时间倒退不是扣令牌的理由：时钟可能往回跳（被 NTP 校正的墙上时钟），这时对桶来说就是没有时间流逝，"
        "而不是流逝了负数的时间。",

    # -- services/course/graders/rate_limit.py ----------------------------------------------------------
    "Try your limiter in the notebook against Redis and compare with what it should do.":
        "在 notebook 里对着 Redis 试一下你的限流器，和它应有的行为对比一下。",
    "exactly `limit` per window": "每个窗口恰好放行 `limit` 个",
    "keys are independent": "不同的 key 互不影响",
    "the Redis keys expire": "Redis 里的 key 会过期",
    "a new window starts after window_s": "过了 window_s 就开始新窗口",
    "atomic under concurrency": "并发下是原子的",
    "retry_after": "retry_after",
    "retry_after tells the truth": "retry_after 说的是实话",
    "the window is window_s from the first request": "窗口从第一个请求算起，长 window_s",
    "LayeredLimiter: user layer": "LayeredLimiter：用户层",
    "LayeredLimiter: the user layer counts the user across addresses": "LayeredLimiter：用户层跨地址统计同一个用户",
    "LayeredLimiter: IP layer": "LayeredLimiter：IP 层",
    "LayeredLimiter: a blocked user spares the IP budget": "LayeredLimiter：被拦下的用户不占 IP 的额度",
    "LayeredLimiter: a verdict's layer and retry_after": "LayeredLimiter：判定结果里的 layer 和 retry_after",
    "LayeredLimiter: the layers keep separate counters": "LayeredLimiter：各层的计数器互相独立",
    "Reading the count and writing it back as separate commands lets concurrent requests read the "
    "same count and all pass. Counting and deciding must be one step that Redis runs without "
    "interleaving anything.":
        "读出计数、再写回去，分成两条命令的话，并发请求会读到同一个计数然后全部放行。计数和判断必须是一步，"
        "由 Redis 执行，中间不插入任何别的命令。",
    "Exactly `limit` requests per window get through: the first `limit` are allowed, the next one is "
    "the first refused. Check what your comparison does exactly at the boundary.":
        "每个窗口恰好放行 `limit` 个请求：前 `limit` 个放行，下一个是第一个被拒绝的。检查一下你的比较在边界上到底是怎么判断的。",
    "Each key has its own counter: one client using up its limit must not affect another.":
        "每个 key 有自己的计数器：一个客户端用完了自己的额度，不能影响另一个。",
    "The counter must live in Redis (shared by every gateway process).": "计数器必须放在 Redis 里（让所有网关进程共享）。",
    "A window's counter must disappear by itself when the window ends: give the key a lifetime (no "
    "longer than the window), set when the window starts. Idle keys then clean themselves up.":
        "窗口结束时，窗口的计数器要自己消失：给 key 设一个过期时间（不超过窗口长度），在窗口开始时设置。"
        "这样闲置的 key 会自己清理掉。",
    "When the window is over, a blocked client starts a fresh window with its full limit.":
        "窗口结束后，被拦下的客户端开始一个新窗口，额度重新满额。",
    "A blocked client should learn how long until its window ends (a positive number of seconds, at "
    "most the window), and a key with no window running has nothing to wait for (0).":
        "被拦下的客户端应该知道还要等多久窗口才结束（正的秒数，不超过窗口长度）；没有正在进行的窗口的 key，"
        "就没什么可等的（0）。",
    "A window lasts `window_s` from the key's FIRST request and is not stretched by later ones: "
    "requests that arrive inside a window (allowed or refused) must not move its end.":
        "一个窗口从这个 key 的第一个请求开始，持续 `window_s`，不会被后来的请求拉长：落在窗口内的请求（不管放行还是拒绝）"
        "都不能推迟窗口的结束时间。",
    "retry_after must tell a blocked client the truth: how long is LEFT of its window (not the whole "
    "window, nor a made-up number), so that waiting exactly that long gets it through.":
        "retry_after 必须对被拦下的客户端说实话：它的窗口还“剩”多久（不是整个窗口的长度，也不是随便编的数）"
        "，这样恰好等这么久之后就能通过。",
    "The user layer allows `user_limit` requests per user per window.": "用户层允许每个用户每个窗口发 `user_limit` 个请求。",
    "A refusal says which layer refused it, so the gateway can tell the client.":
        "拒绝的结果要说明是哪一层拒绝的，这样网关才能告诉客户端。",
    "The user layer counts the USER: the same user spreading requests over several addresses (Wi-Fi, "
    "mobile, a proxy) still gets `user_limit` per window, not `user_limit` per address.":
        "用户层统计的是“用户”：同一个用户把请求分散到多个地址（Wi-Fi、移动网络、代理），每个窗口仍然只有 `user_limit` 个，"
        "而不是每个地址 `user_limit` 个。",
    "The IP layer counts every request from one address, whoever the user: it stops one machine that "
    "invents many user ids.":
        "IP 层统计来自同一个地址的所有请求，不管是哪个用户：它能拦住一台机器伪造大量用户 id 来刷。",
    "Each IP address has its own budget.": "每个 IP 地址有自己的额度。",
    "Think about the order of the layers: a user refused for their own excess must not also use up "
    "the budget of the address they share with others (an office, a campus, a carrier's NAT).":
        "想想各层的顺序：一个用户因为自己超限被拒绝，就不该再消耗他和别人共用的那个地址的额度（办公室、校园网、运营商的 NAT）"
        "。",
    "A verdict is the gateway's whole answer: an allowed request has no layer and nothing to wait for "
    "(0); a refused one names the layer that refused it and how long is left of that layer's window "
    "(more than 0, at most the window).":
        "判定结果就是网关的完整回答：放行的请求没有 layer，也不用等（0）；被拒绝的请求要写明是哪一层拒绝的，"
        "以及这一层的窗口还剩多久（大于 0，不超过窗口长度）。",
    "Each layer counts in its own keys: a user whose id happens to equal an address must not spend "
    "that address's budget (nor a limiter with another purpose share a counter with this one).":
        "每一层用自己的 key 计数：一个用户的 id 恰好和某个地址相同时，不能花掉那个地址的额度（另一个用途的限流器也不能和它共用计数器）"
        "。",

    # -- services/course/graders/producer.py ------------------------------------------------------------
    "Try your OrderProducer in the notebook and look at the queue in RabbitMQ.":
        "在 notebook 里试一下你的 OrderProducer，再去 RabbitMQ 里看看队列。",
    "the order is in the queue when send_order returns": "send_order 返回时订单已经在队列里",
    "the queue is durable": "队列是持久化的",
    "messages are persistent": "消息是持久化的",
    "publisher confirms: a refused message raises PublishError": "发布确认：被拒收的消息要抛出 PublishError",
    "broker down: PublishError within 5 s": "broker 挂了：5 秒内抛出 PublishError",
    "unroutable (queue deleted under an open channel) raises PublishError":
        "无法路由（在打开的 channel 下删掉队列）要抛出 PublishError",
    "connection cut before the confirm: PublishError, then recovery": "确认回来之前连接被切断：抛出 PublishError，之后能恢复",
    "a frozen broker (confirm held back): PublishUnknown within the deadline, then recovery":
        "broker 卡死（确认迟迟不回）：在截止时间内抛出 PublishUnknown，之后能恢复",
    "a dropped connection between sends: the producer reconnects": "两次发送之间连接断了：生产者自动重连",
    "one connection for many sends; none left after close; the queue stays": "多次发送共用一个连接；close 之后不留连接；队列还在",
    "a setup the broker refuses raises and leaves no connection open": "broker 拒绝初始化时要抛错，并且不留下打开的连接",
    "Publishing is fire-and-forget unless you ask the broker to confirm each message: only then does "
    "send_order learn that the broker refused or lost it, and can raise PublishError.":
        "发布默认是发完就不管（fire-and-forget）的，除非你让 broker 对每条消息做发布确认："
        "只有这样，send_order 才能知道 broker 拒收或弄丢了消息，从而抛出 PublishError。",
    "The connection can die after the message left and before the broker's confirm came back: then "
    "nobody knows the order is safe, and send_order must not return normally. Publishing is "
    "fire-and-forget unless you ask the broker to confirm each message: only then does send_order "
    "learn that the broker refused or lost it, and can raise PublishError.":
        "消息发出之后、broker 的确认回来之前，连接可能断掉：这时谁也不知道订单是否安全，send_order 不能正常返回。"
        "发布默认是发完就不管（fire-and-forget）的，除非你让 broker 对每条消息做发布确认："
        "只有这样，send_order 才能知道 broker 拒收或弄丢了消息，从而抛出 PublishError。",
    "An order that was refused, unroutable, or never sent is definitely NOT queued: reported as an "
    "unknown outcome, the gateway would keep the reservation and answer 'pending' for an order that "
    "will never arrive. Only a message that left with no confirm back is unknown.":
        "被拒收、无法路由或者根本没发出去的订单，肯定“不在”队列里：如果把它报成结果未知，网关就会一直占着预减的库存，"
        "并对一个永远不会到达的订单回答 pending。只有发出去了但没收到确认的消息，结果才是未知的。",
    "A publish whose confirm never came was reported as a definite failure: the gateway would release "
    "an item the broker may still deliver (and the order service then sell it twice). Sent but not "
    "confirmed is an unknown outcome: it has its own exception.":
        "一次始终没等到确认的发布被报成了确定的失败：网关会把库存归还，而 broker 可能仍会投递这条消息（订单服务随后把同一件卖两次）"
        "。发了但没确认，是结果未知：它有自己的异常类。",
    "A broker that froze (a paused VM, a stuck disk) keeps the TCP connection open and never answers: "
    "waiting for its confirm without a time limit holds the gateway thread, and the user, as long as "
    "the freeze lasts. Give up after the producer's confirm deadline, with an unknown outcome.":
        "卡死的 broker（虚拟机被暂停、磁盘卡住）会一直保持 TCP 连接却从不回应：不设时限地等它的确认，"
        "就会在它卡住期间一直占着网关线程，用户也跟着干等。超过生产者的确认截止时间就放弃，结果按未知处理。",
    "The producer has three outcomes: sent and confirmed, definitely not queued (PublishError), and "
    "unknown (PublishUnknown, a kind of PublishError). Keep both exception classes of the module.":
        "生产者有三种结果：已发送且已确认；肯定没进队列（PublishError）；结果未知（PublishUnknown，"
        "它是 PublishError 的一种）。模块里这两个异常类都要保留。",
    "When send_order returns, the order must already be in the queue: the producer creates (declares) "
    "the queue it sends to, and waits until the broker has taken the message.":
        "send_order 返回时，订单必须已经在队列里：生产者要自己创建（声明）它发送的目标队列，并且等 broker 收下消息之后再返回。",
    "An order send_order returned for must be in the queue.": "send_order 已经返回的订单，必须在队列里。",
    "The message body is the order as JSON, unchanged.": "消息体就是订单本身的 JSON，原样不动。",
    "send_order must put the order in the queue it was given.": "send_order 必须把订单放进传给它的那个队列。",
    "A queue the broker forgets on restart loses every order in it: declare it so that it survives a "
    "broker restart.":
        "broker 重启后就忘掉的队列，会丢掉里面所有订单：声明队列时要让它在 broker 重启后依然存在。",
    "A durable queue keeps only the messages marked to be kept: each message itself must be marked "
    "persistent, or a broker restart drops it.":
        "持久化的队列只保留标记为要保留的消息：每条消息本身也必须标记为持久化，否则 broker 一重启就丢了。",
    "Every way a publish can fail must reach the caller as PublishError (one thing to catch).":
        "发布失败的每一种情况，都必须以 PublishError 的形式交给调用方（调用方只需要捕获这一种异常）"
        "。",
    "Every way a publish can fail must reach the caller as PublishError (one thing to catch): turn "
    "the client library's connection errors into it.":
        "发布失败的每一种情况，都必须以 PublishError 的形式交给调用方（调用方只需要捕获这一种异常）"
        "：把客户端库的连接异常转换成它。",
    "When the broker cannot be reached the order is NOT queued: send_order must say so.":
        "连不上 broker 时订单“没有”进队列：send_order 必须明确告诉调用方。",
    "A gateway thread stuck waiting for a dead broker is worse than a quick 'try again': fail fast.":
        "网关线程卡在等一个已经挂掉的 broker 上，比快速回一句“请重试”更糟：要快速失败。",
    "A message that reaches no queue is dropped by the broker, and a publisher confirm still says "
    "'ok' (the broker handled it: by throwing it away). Ask the broker to return a message it cannot "
    "route, and treat that as a failure.":
        "没有进入任何队列的消息会被 broker 直接丢弃，而发布确认照样回答 ok（broker 确实处理了它："
        "方式是扔掉）。要让 broker 把无法路由的消息退回来，并把这种情况当作失败。",
    "After a failure the producer must recover by itself: the next send starts afresh (and declares "
    "its queue again).":
        "失败之后生产者必须自己恢复：下一次发送重新开始（并且重新声明队列）。",
    "send_order must work through an ordinary TCP connection.": "send_order 必须能通过普通的 TCP 连接正常工作。",
    "A lost connection must reach the caller as PublishError, and quickly.":
        "连接断开必须以 PublishError 的形式交给调用方，而且要快。",
    "After a lost connection the next send must reconnect instead of failing for ever.":
        "连接断开之后，下一次发送必须重新连接，而不是一直失败下去。",
    "Only what send_order reported as sent may be in the queue, in order.":
        "队列里只能有 send_order 报告为已发送的订单，而且顺序不变。",
    "After an unknown outcome the producer must start afresh: the next send opens a new connection "
    "instead of waiting on the frozen one.":
        "遇到结果未知之后，生产者必须重新开始：下一次发送打开一个新连接，而不是继续等那个卡死的连接。",
    "send_order must publish the order.": "send_order 必须把订单发布出去。",
    "A connection dropped while the producer was idle (a network blip, a broker restart) must not "
    "fail the next send: nothing was published on it yet, so check it is alive before publishing and "
    "reconnect if not.":
        "生产者空闲时连接断了（网络抖动、broker 重启），不能让下一次发送失败：这条连接上还什么都没发，"
        "所以发布前先检查连接是否还活着，不行就重连。",
    "Every failure must reach the caller as PublishError.": "每一种失败都必须以 PublishError 的形式交给调用方。",
    "A connection to the broker is expensive (a TCP and AMQP handshake): keep one open and reuse it "
    "for every send, rather than one per order.":
        "和 broker 建一个连接的代价很高（一次 TCP 握手加一次 AMQP 握手）：保持一个连接，"
        "每次发送都复用它，而不是每个订单开一个。",
    "close() must give the connection back to the broker: a gateway that leaks one per restart ends "
    "up refused by the broker.":
        "close() 必须把连接还给 broker：每次重启都泄漏一个连接的网关，最后会被 broker 拒绝连接。",
    "The queue belongs to the broker, not to the producer's connection: it and its orders must "
    "outlive the producer that declared it.":
        "队列属于 broker，而不属于生产者的连接：队列和里面的订单必须比声明它的生产者活得更久。",
    "A connection opened for a setup that then failed must be closed on the way out: otherwise every "
    "failed attempt leaves one behind, until the broker refuses new ones.":
        "为初始化而打开、随后初始化失败的连接，必须在退出时关掉：否则每次失败的尝试都会留下一个，直到 broker 拒绝新的连接。",
    "When the producer cannot set up its channel (the broker refuses the queue's declaration), the "
    "order is not queued: send_order must raise PublishError.":
        "生产者建不起 channel 时（broker 拒绝了队列的声明），订单没有进队列：send_order 必须抛出 PublishError。",

    # -- services/course/graders/consumer.py ------------------------------------------------------------
    "Try your OrderConsumer in the notebook against PostgreSQL and compare with what it should do.":
        "在 notebook 里对着 PostgreSQL 试一下你的 OrderConsumer，和它应有的行为对比一下。",
    "handle writes once; a redelivery changes nothing": "handle 只写一次；重复投递什么都不改变",
    "one order per user per product": "每个用户每个商品只能有一单",
    "the stock decrement is guarded": "扣减库存有条件保护",
    "an unknown product is refused, not raised": "不存在的商品要拒绝，而不是抛异常",
    "run writes the published orders and empties the queue": "run 写入已发布的订单，并把队列清空",
    "acknowledge only after commit": "提交之后才确认（ack）",
    "a malformed message is dropped, not redelivered for ever": "格式错误的消息被丢弃，而不是无休止地重新投递",
    "close() ends the database session": "close() 结束数据库会话",
    "every refusal is recorded with its reason; statuses answer": "每次拒绝都记录了原因；状态可以查询",
    "run decides every order: confirmed or rejected, none pending":
        "run 对每个订单都做出决定：confirmed 或 rejected，没有一单停在 pending",
    "handle: a write failing once, then redelivery, ends as without the fault":
        "handle：写入失败一次、再重新投递，结果和没出故障时一样",
    "run: a write failing once, then redelivery, ends as without the fault": "run：写入失败一次、再重新投递，结果和没出故障时一样",
    "killed after commit, before ack: the redelivery changes nothing": "提交之后、ack 之前被杀掉：重新投递什么都不改变",
    "handle writes the order and takes one item from the product's stock, in one transaction, and "
    "says True.":
        "handle 在一个事务里写入订单、从商品库存里扣一件，然后返回 True。",
    "RabbitMQ delivers at least once, so the same order can arrive twice. Make the second copy "
    "harmless: the database already knows this order id, so writing it again must change nothing (and "
    "not fail).":
        "RabbitMQ 的投递语义是至少一次，所以同一个订单可能到两次。要让第二份无害（幂等）：数据库已经知道这个订单 id，"
        "再写一次必须什么都不改变（也不能报错）。",
    "One purchase per user per product: the database refuses a second order of the same user for the "
    "same product; handle must treat that refusal as an answer (False), not a crash, and take no "
    "stock.":
        "每个用户每个商品只能买一次：数据库会拒绝同一用户对同一商品的第二个订单；handle 必须把这种拒绝当作一个回答（False）"
        "，而不是崩溃，并且不扣库存。",
    "PostgreSQL is the last guard against overselling: the stock update must only succeed while there "
    "is stock, and an order that found none must not stay written.":
        "PostgreSQL 是防超卖的最后一道防线：只有还有库存时，扣减库存的 update 才能成功；"
        "没扣到库存的订单不能留在库里。",
    "An order for a product the database does not know is refused (False), not a crash that would "
    "bring the message back forever.":
        "数据库里不存在的商品的订单要拒绝（返回 False），而不是崩溃：崩溃会让这条消息一遍又一遍地回来。",
    "run writes every message it takes and then acknowledges it, so the queue ends empty.":
        "run 把取到的每条消息都写入，然后再确认，这样队列最后是空的。",
    "An order that was written is confirmed, never also recorded as refused: a good batch must leave "
    "order_rejections (and any dead-letter queue) empty. If acknowledging fails after the commit, the "
    "orders are already safe; treat that as a broker problem, not as poison.":
        "已经写入的订单就是 confirmed，绝不能同时被记成拒绝：一批正常的订单跑完，order_rejections（以及死信队列，"
        "如果有的话）应该是空的。如果提交之后 ack 失败，订单其实已经安全了；把它当作 broker 的问题，"
        "而不是毒消息（poison message）。",
    "The acknowledgement tells RabbitMQ it may forget the message. Give it only once the order is "
    "safely committed: if the write fails after the ack, the order is lost for good.":
        "ack 是告诉 RabbitMQ 可以忘掉这条消息了。只有在订单安全提交之后才能 ack：如果 ack 之后写入失败，"
        "订单就永远丢了。",
    "A message that could not be written comes back and is written on the next run.":
        "没能写入的消息会回到队列，在下一次运行时写入。",
    "A message that can never become an order (not JSON, fields missing) must be set aside, not "
    "handed back to the queue: requeued, it comes back for ever and blocks the orders behind it (a "
    "poison message).":
        "永远成不了订单的消息（不是 JSON、缺字段）必须放到一边（比如死信队列），而不是退回队列：退回去它会无休止地回来，"
        "堵住后面的订单（毒消息）。",
    "close() must end the consumer's database session: PostgreSQL allows a limited number, and a "
    "service that restarts its consumers would run out.":
        "close() 必须结束消费者的数据库会话：PostgreSQL 的连接数是有限的，一个会反复重启消费者的服务迟早会用光。",
    "A refusal's record says why: sold_out, already_bought or unknown_product.":
        "拒绝记录要写明原因：sold_out、already_bought 或 unknown_product。",
    "Every order that comes in must end decided: written, or refused AND recorded with its reason, so "
    "the buyer's status page says 'rejected' instead of 'pending' for ever. A refusal that leaves no "
    "record looks to the buyer like an order still on its way.":
        "每个进来的订单最后都必须有定论：要么写入，要么被拒绝“并且”记下原因，这样买家的订单状态页显示的是 rejected，"
        "而不是一直 pending。一个没留下记录的拒绝，在买家看来就是订单还在路上。",
    "Through the real loop too, every order ends decided: the first buyers while stock lasts are "
    "written, the others are refused and recorded with a reason (no order stays 'pending').":
        "在真实的消费循环里也一样，每个订单都要有定论：库存还在时先到的买家被写入，其余的被拒绝并记下原因（没有一单停在 pending）"
        "。",
    "A write can fail between any two statements. Whatever handle writes for one order (the order, "
    "the stock, a refusal) must commit together or not at all, so that the redelivered order finds "
    "the books as if nothing had happened and finishes the job.":
        "写入可能在任意两条语句之间失败。handle 为一个订单写的所有东西（订单、库存、拒绝记录）必须一起提交，"
        "要么全不提交，这样重新投递的订单看到的账就像什么都没发生过，然后把事情做完。",
    "A fault in the middle of a batch must roll the whole batch back and leave its messages "
    "unacknowledged: the broker redelivers them and the restarted service reaches the same books as a "
    "run without the fault.":
        "一批处理到一半出了故障，必须把整批回滚，并且这批消息都不确认：broker 会重新投递，重启后的服务最终得到的账和没出故障时一样。",
    "A consumer can die after its commit and before its acknowledgement: the broker then delivers the "
    "same orders again. The second delivery must change nothing (the database recognises orders it "
    "has already decided).":
        "消费者可能在提交之后、ack 之前挂掉：broker 会把同样的订单再投递一次。第二次投递必须什么都不改变（数据库认得它已经处理过的订单）"
        "。",

    # -- services/stack/envcheck.py (seckill doctor)  ---------------------------------------------------
    ": ": "：",
    "another process": "另一个进程",
    "another program": "另一个程序",
    "a connection of {name(conn.pid)} (nothing listens there, but the port is in use)":
        "{name(conn.pid)} 的一个连接（那里没有程序在监听，但端口被占着）",
    "auto: the server binaries are installed": "auto：服务端程序都已安装",
    "auto: {', '.join(absent)} will be installed with apt-get": "auto：{', '.join(absent)} 会用 apt-get 安装",
    "auto: {', '.join(absent)} not installed; {why}": "auto：没有安装 {', '.join(absent)}；{why}",
    "auto: {', '.join(absent)} not installed and no Docker ({why})":
        "auto：没有安装 {', '.join(absent)}，也没有 Docker（{why}）",
    "ok": "通过",
    "warn": "警告",
    "python": "Python",
    "backend": "后端",
    "packages": "依赖包",
    "servers": "服务端程序",
    "ports": "端口",
    "memory": "内存",
    "disk": "磁盘",
    "fonts": "字体",
    "free memory": "可用内存",
    "free disk": "可用磁盘空间",
    "CJK font": "中文字体",
    "sudo apt-get install fonts-noto-cjk   (or fonts-wqy-microhei; macOS: brew install --cask "
    "font-noto-sans-cjk-sc; conda: conda install -c conda-forge font-ttf-noto-cjk)":
        "sudo apt-get install fonts-noto-cjk   （或者 fonts-wqy-microhei；"
        "macOS 上：brew install --cask font-noto-sans-cjk-sc；"
        "conda 环境：conda install -c conda-forge font-ttf-noto-cjk）",
    "no font with Chinese glyphs: the 中文 edition and its charts would show boxes":
        "没有带中文字形的字体：中文版 notebook 和图表里的汉字会显示成方框",
    "fc-list not found (fontconfig), cannot tell whether a Chinese font is installed":
        "找不到 fc-list（fontconfig），无法判断是否装了中文字体",
    "install the {package} package with your system's package manager (or conda-forge: {conda})":
        "用系统的包管理器安装 {package} 包（或者从 conda-forge 装：{conda}）",
    "not found on this machine": "这台机器上没找到",
    "not found in SECKILL_BIN_PATH={where}": "在 SECKILL_BIN_PATH={where} 里没找到",
    "unset SECKILL_BIN_PATH (or add {folder} to it): {path} is installed":
        "unset SECKILL_BIN_PATH（或者把 {folder} 加进去）：{path} 其实已经装好了",
    "stop that program": "停掉那个程序",
    "free": "空闲",
    "held by this course (pid {pid})": "被本课程占用（pid {pid}）",
    "held by docker compose (pid {pid})": "被 docker compose 占用（pid {pid}）",
    "taken by {owner}, not by this course": "被 {owner} 占用，不是本课程的进程",
    "{stop} if it is yours to stop, or move the course: `{move}` in your terminal, then `make lab` "
    "again":
        "如果那是你自己的程序，可以 {stop}；或者把课程挪到别的端口：在终端里执行 `{move}`，"
        "再重新 `make lab`",
    "free at least {need:,.0f} MB: close other programs (browsers, IDEs, containers); `seckill tier "
    "down` stops a running tier":
        "至少再腾出 {need:,.0f} MB：关掉别的程序（浏览器、IDE、容器）；`seckill tier down` 可以停掉正在运行的 tier",
    "{mb:,.0f} MB available": "可用 {mb:,.0f} MB",
    "{mb:,.0f} MB available: enough for the stack, tight for load tests": "可用 {mb:,.0f} MB：跑起整套服务够用，压测就有点紧张",
    "{mb:,.0f} MB available; the stack needs about {need} MB (RabbitMQ alone ~400 MB)":
        "可用 {mb:,.0f} MB；整套服务大约需要 {need} MB（光 RabbitMQ 就要约 400 MB）",
    "{mb:,.0f} MB free under {path}": "{path} 下剩余 {mb:,.0f} MB",
    "{mb:,.0f} MB free under {path}; the course needs {need} MB": "{path} 下只剩 {mb:,.0f} MB；课程需要 {need} MB",
    "free {more:,.0f} MB on that disk (`seckill reset` wipes this course's server data; `du -sh "
    "{path}/*` shows what is big)":
        "在那块磁盘上腾出 {more:,.0f} MB（`seckill reset` 会清空本课程服务端的数据；"
        "`du -sh {path}/*` 可以看出什么占地方）",
    "{shown} is too old; the course needs {need} or newer": "{shown} 太旧了，课程需要 {need} 或更新的版本",
    "install Python {need}+ then rebuild the environment: rm -rf .venv && make lab "
    "PYTHON=python{need}":
        "装好 Python {need}+ 之后重建环境：rm -rf .venv && make lab PYTHON=python{need}",
    "{installed} installed, the course pins {version}": "装的是 {installed}，课程锁定的版本是 {version}",
    "not installed": "没有安装",
    "start Docker (Docker Desktop, or `sudo systemctl start docker`) and install Compose, or export "
    "SECKILL_BACKEND=native":
        "启动 Docker（Docker Desktop，或者 `sudo systemctl start docker`）"
        "并安装 Compose，或者 export SECKILL_BACKEND=native",
    "no Compose": "没有 Compose",
    "Not ready yet: {n} problem(s). Fix each, then run this notebook again from the top:":
        "还没准备好：有 {n} 个问题。逐个修好后，从头重新运行这个 notebook：",
    "all {n} checks passed: this machine is ready for the course": "{n} 项检查全部通过：这台机器可以开始上课了",
    "{n} problem(s) to fix": "{n} 个问题要修",
    "{n} warning(s)": "{n} 个警告",
    " and ": "，",
    "{parts} (of {n} checks); each comes with its fix": "{parts}（共 {n} 项检查），每一项都附有修复方法",
    "{n} checks ({names})": "{n} 项检查（{names}）",

    # -- one-line errors the CLI prints (SeckillError messages, keyed by their f-string's source) 
    "interrupted": "已中断",
    "no scenario called {scenario!r}; choose one of: {', '.join(chaos.SCENARIOS)}":
        "没有叫 {scenario!r} 的场景；可选的有：{', '.join(chaos.SCENARIOS)}",
    "unknown lab {lab!r}; the labs are: {', '.join(grader.LABS)}":
        "没有 {lab!r} 这个实验；现有的实验是：{', '.join(grader.LABS)}",
    "{scenario} does not take --tier; run it without": "{scenario} 不接受 --tier 参数；去掉它再运行",
    "--only chooses among the speed-ups; add --speedups": "--only 是在各项提速里挑选；请加上 --speedups",
    "no speed-up named {unknown}; choose from {known}": "没有名为 {unknown} 的提速项；可选：{known}",
    "--speedups measures one tier at a time; give --tier once": "--speedups 一次只测一个档位；--tier 只给一次",
    "cannot listen on {host}:{port} ({exc.strerror}); give another --port":
        "无法在 {host}:{port} 上监听（{exc.strerror}）；换一个 --port",
    "no room log at {room_dir}; run `seckill workshop init` or give --room":
        "{room_dir} 下没有教室日志；先运行 `seckill workshop init`，或者用 --room 指定",
    "SECKILL_PORT_BASE={base} is out of range; give a port between 1024 and {65535 - BLOCK_SIZE} (the "
    "stack takes the {BLOCK_SIZE} ports from there)":
        "SECKILL_PORT_BASE={base} 超出范围；请给一个 1024 到 {65535 - BLOCK_SIZE} 之间的端口（整套服务从这里开始占用 {BLOCK_SIZE} 个端口）",
    "{name}={raw!r} is not a number; unset it or give a value like {default}":
        "{name}={raw!r} 不是数字；unset 它，或者给一个像 {default} 这样的值",
    "{name}={raw!r} is not a whole number; unset it or give a port like {default}":
        "{name}={raw!r} 不是整数；unset 它，或者给一个像 {default} 这样的端口",
    "{name}={raw!r}: use 1 or 0": "{name}={raw!r}：请用 1 或 0",
    "SECKILL_IMPL={impl!r}: use 'solutions', 'labs' or a folder holding {piece}.py":
        "SECKILL_IMPL={impl!r}：请用 'solutions'、'labs'，或者一个包含 {piece}.py 的目录",
    "unknown piece {piece!r}; the pieces are {', '.join(PIECES)}":
        "没有 {piece!r} 这个模块；现有的是 {', '.join(PIECES)}",
    "--impl {impl!r}: use 'labs', 'solutions' or a folder holding {module}.py":
        "--impl {impl!r}：请用 'labs'、'solutions'，或者一个包含 {module}.py 的目录",
    "cannot find {impl}/{module}.py": "找不到 {impl}/{module}.py",
    "unknown lab {lab!r}; the labs are: {', '.join(LABS)}": "没有 {lab!r} 这个实验；现有的实验是：{', '.join(LABS)}",
    "product id must be a positive whole number, not {product_id!r}": "商品 id 必须是正整数，而不是 {product_id!r}",
    "stock must be a whole number from 0 to 1000000000, not {stock!r}":
        "库存必须是 0 到 1000000000 之间的整数，而不是 {stock!r}",
    "the sale must end after it starts (--ends-at later than --starts-at)":
        "秒杀的结束时间必须晚于开始时间（--ends-at 要晚于 --starts-at）",
    "{waiting} orders are still waiting in the queue {s.queue!r}; let the order service drain them, "
    "or pass --force to drop them":
        "队列 {s.queue!r} 里还有 {waiting} 个订单在排队；等订单服务把它们消费完，"
        "或者加 --force 直接丢掉",
    "{what} {value!r} has no time zone; add one, e.g. {value}+08:00 or {value}Z (UTC)":
        "{what} {value!r} 没有带时区；请加上，例如 {value}+08:00 或 {value}Z（UTC）",
    "{what} {value!r} is not an ISO-8601 time like 2026-11-25T20:00:00+08:00":
        "{what} {value!r} 不是 ISO-8601 格式的时间（例如 2026-11-25T20:00:00+08:00）",
    "SECKILL_BACKEND={chosen!r}: use native, docker or auto":
        "SECKILL_BACKEND={chosen!r}：请用 native、docker 或 auto",
    "no service called {service!r}; choose one of: {', '.join(SERVICES)}":
        "没有叫 {service!r} 的服务；可选的有：{', '.join(SERVICES)}",
    "no service called {service!r}; choose one of: {', '.join(sorted(known))}":
        "没有叫 {service!r} 的服务；可选的有：{', '.join(sorted(known))}",
    "only redis keeps a snapshot to forget, not {service!r}": "只有 redis 有可以丢弃的快照，{service!r} 没有",
    "cannot create the run dir {s.run_dir} (permission denied); export "
    "SECKILL_WORKSHOP=1 (a run dir in your home) or SECKILL_RUN_DIR=<a folder of yours>":
        "无法创建运行目录 {s.run_dir}（没有权限）；请 export SECKILL_WORKSHOP=1（运行目录放在你的家目录下）"
        "或 SECKILL_RUN_DIR=<你自己的目录>",
    "PostgreSQL on port {s.ports.postgres} refuses this stack's password: its data was "
    "made with another one; `seckill reset` starts it afresh (and wipes its data)":
        "端口 {s.ports.postgres} 上的 PostgreSQL 不接受本栈的密码：它的数据是用另一个密码建的；"
        "`seckill reset` 会从头再来（并清空它的数据）",
    "port {server.port} for {server.name} is taken by {processes.who_listens(server.port)}; stop it "
    "or `export {env_var}={processes.free_port_near(server.port)}`":
        "{server.name} 要用的端口 {server.port} 被 {processes.who_listens(server.port)} 占用了；"
        "停掉它，或者 `export {env_var}={processes.free_port_near(server.port)}`",
    "local_slice must be at least 1 (SECKILL_LOCAL_SLICE / --local-slice), not {chosen.local_slice}":
        "local_slice 至少为 1（SECKILL_LOCAL_SLICE / --local-slice）"
        "，而不是 {chosen.local_slice}",
    "no limit called {', '.join(sorted(unknown))}; the limits are: {', '.join(asdict(s.limits))}":
        "没有叫 {', '.join(sorted(unknown))} 的限流参数；可用的有：{', '.join(asdict(s.limits))}",
    "no tier called {name!r}; choose one of: {', '.join(TIERS)}":
        "没有叫 {name!r} 的 tier；可选的有：{', '.join(TIERS)}",
    "port {port} for {proc.name} is taken by {processes.who_listens(port)}; stop it or move the tier: "
    "`export {variable}={processes.free_port_near(base, taken=(port,))}`":
        "{proc.name} 要用的端口 {port} 被 {processes.who_listens(port)} 占用了；"
        "停掉它，或者把 tier 挪到别的端口：`export {variable}={processes.free_port_near(base, taken=(port,))}`",
    "PostgreSQL is not reachable ({type(exc).__name__}); start it with `seckill up`":
        "连不上 PostgreSQL（{type(exc).__name__}）；用 `seckill up` 启动它",
    "RabbitMQ is not reachable ({exc!r}); start it with `seckill up`":
        "连不上 RabbitMQ（{exc!r}）；用 `seckill up` 启动它",
    "Redis is not reachable ({exc}); start it with `seckill up`": "连不上 Redis（{exc}）；用 `seckill up` 启动它",
    "Redis is not reachable ({exc}); start it with `seckill up`, then run again (whatever was fixed "
    "before it went away stays fixed)":
        "连不上 Redis（{exc}）；用 `seckill up` 启动它，然后再运行一次（它断开之前已经修好的部分不会丢）",
    "no product {product_id} in PostgreSQL; create it with `seckill sale create`":
        "PostgreSQL 里没有商品 {product_id}；用 `seckill sale create` 创建它",
    "{tool} not found beside {path or name}; reinstall {SERVERS[name].apt}":
        "在 {path or name} 旁边找不到 {tool}；重新安装 {SERVERS[name].apt}",
    "no free port found near {port}": "{port} 附近找不到空闲端口",
    "{exc}{log_reason(log_path)}": "{exc}{log_reason(log_path)}",
    "{name} exited while starting (code {exc.exit_code}){log_reason(log_path)}; whole log: {log_path}":
        "{name} 启动过程中退出了（退出码 {exc.exit_code}）{log_reason(log_path)}；"
        "完整日志：{log_path}",
    "{name} exited while starting; whole log: {log_path}": "{name} 启动过程中退出了；完整日志：{log_path}",
    "{name} is not running; start it first": "{name} 没有在运行；先启动它",
    "{name} was not ready within {timeout:.0f} s{log_reason(log_path)}; whole log: {log_path}":
        "{name} 在 {timeout:.0f} 秒内没有就绪{log_reason(log_path)}；"
        "完整日志：{log_path}",
    "JupyterLab did not start{reason}; whole log: {log_path}": "JupyterLab 没有启动起来{reason}；完整日志：{log_path}",
    "port {port} is taken by {processes.who_listens(port)}; use another: make lab "
    "PORT={processes.free_port_near(port)}":
        "端口 {port} 被 {processes.who_listens(port)} 占用了；换一个："
        "make lab PORT={processes.free_port_near(port)}",
    "checklist item {item.id!r} has no evidence rule in services/course/checklist.py":
        "自查清单的条目 {item.id!r} 在 services/course/checklist.py 里没有对应的证据规则",
    "checklist item {match['id']!r} needs its Chinese line right below it":
        "自查清单的条目 {match['id']!r} 紧接着的下一行必须是它的中文",
    "language must be one of {', '.join(WORDS)}, not {lang!r}": "语言必须是 {', '.join(WORDS)} 之一，而不是 {lang!r}",
    "the checklist file holds no items (lines like: - [ ] `id` English)":
        "自查清单文件里没有任何条目（条目的格式是：- [ ] `id` English）",
    "{path} is missing; restore it with `git checkout {path.name}`":
        "{path} 不见了；用 `git checkout {path.name}` 恢复它",
    "no scenario called {name!r}; choose one of: {', '.join(SCENARIOS)}":
        "没有叫 {name!r} 的场景；可选的有：{', '.join(SCENARIOS)}",
    "cannot pick a free result name in {root}": "在 {root} 里找不到可用的结果文件名",
    "duration must be from 1 to {MAX_DURATION_S:.0f} seconds, not {duration_s!r}":
        "持续时间必须在 1 到 {MAX_DURATION_S:.0f} 秒之间，而不是 {duration_s!r}",
    "locust wrote no statistics (exit {returncode}); its log {run_dir / 'locust.log'} ends: "
    "{_log_tail(run_dir)}":
        "locust 没有写出任何统计数据（退出码 {returncode}）；它的日志 {run_dir / 'locust.log'} 最后几行是："
        "{_log_tail(run_dir)}",
    "no free port from 61000 to 65535 for locust's master; stop some programs and try again":
        "61000 到 65535 之间找不到给 locust master 用的空闲端口；停掉一些程序后再试",
    "no tier called {name!r}; choose one of: {', '.join(tiers.TIERS)} (or give a base URL like "
    "http://127.0.0.1:18000)":
        "没有叫 {name!r} 的 tier；可选的有：{', '.join(tiers.TIERS)}（或者给一个基础 URL，"
        "例如 http://127.0.0.1:18000）",
    "processes must be from 1 to 64, not {processes!r}": "进程数必须在 1 到 64 之间，而不是 {processes!r}",
    "requests per user must be from 1 to 10000, not {requests_per_user!r}":
        "每个用户的请求数必须在 1 到 10000 之间，而不是 {requests_per_user!r}",
    "spawn rate must be a number of users per second above 0, not {spawn_rate!r}":
        "spawn rate 必须是每秒启动的用户数，且大于 0，而不是 {spawn_rate!r}",
    "there is no sale for product {product_id}; create one with --stock N (stock=N from Python)":
        "商品 {product_id} 没有秒杀活动；用 --stock N 创建一个（在 Python 里是 stock=N）",
    "tier {name!r} is not running{running}; start it with `seckill tier up {name}`":
        "tier {name!r} 没有在运行{running}；用 `seckill tier up {name}` 启动它",
    "users must be a whole number from 1 to 1000000, not {users!r}": "用户数必须是 1 到 1000000 之间的整数，而不是 {users!r}",
    "{tier_or_base_url!r}: load tests only target this machine (http://127.0.0.1:PORT), or name a "
    "tier like flask":
        "{tier_or_base_url!r}：压测只能打本机（http://127.0.0.1:PORT）"
        "，或者给一个 tier 的名字，例如 flask",
    "`docker {' '.join(args)}` failed: {result.stderr.strip()[:300]}":
        "`docker {' '.join(args)}` 执行失败：{result.stderr.strip()[:300]}",
    "`{' '.join(base)} {' '.join(args)}` did not finish in {timeout:.0f} s; is the Docker engine "
    "busy? see `docker ps`":
        "`{' '.join(base)} {' '.join(args)}` 在 {timeout:.0f} 秒内没有结束；"
        "Docker 引擎是不是很忙？看看 `docker ps`",
    "`{' '.join(base)} {' '.join(args)}` failed: {tail}": "`{' '.join(base)} {' '.join(args)}` 执行失败：{tail}",
    "container {service} {st['status']}; see `seckill logs {service}`":
        "容器 {service} 的状态是 {st['status']}；看看 `seckill logs {service}`",
    "docker ps did not answer ({exc.__class__.__name__}); is the Docker engine running?":
        "docker ps 没有响应（{exc.__class__.__name__}）；Docker 引擎在运行吗？",
    "docker ps failed: {result.stderr.strip()[:200]}": "docker ps 执行失败：{result.stderr.strip()[:200]}",
    "neither `docker compose` nor `docker-compose` works; install one (Docker Desktop has both) or "
    "use SECKILL_BACKEND=native":
        "`docker compose` 和 `docker-compose` 都用不了；装其中一个（Docker Desktop 两个都带）"
        "，或者用 SECKILL_BACKEND=native",
    "neither `docker compose` nor `docker-compose` works; install one or use SECKILL_BACKEND=native":
        "`docker compose` 和 `docker-compose` 都用不了；装其中一个，或者用 SECKILL_BACKEND=native",
    "{', '.join(pending)} not healthy within {timeout:.0f} s; see `seckill logs SERVICE`":
        "{', '.join(pending)} 在 {timeout:.0f} 秒内没有变成 healthy；"
        "看看 `seckill logs SERVICE`",

    "PostgreSQL holds {numbers['orders']} orders after {total} committed transactions":
        "{total} 个事务提交之后，PostgreSQL 里有 {numbers['orders']} 个订单",
    "confirms needs at least 2 messages (one opens the connection outside the clock)":
        "confirms 至少需要 2 条消息（其中一条用来在计时之外建立连接）",
    "could not read a rate from redis-benchmark's output: {text.strip()[:160] or '(nothing)'}":
        "从 redis-benchmark 的输出里读不出速率：{text.strip()[:160] or '(nothing)'}",
    "items must be a whole number from 1 to 1,000,000, not {items!r}":
        "商品件数必须是 1 到 1,000,000 之间的整数，而不是 {items!r}",
    "reconcile found differences in a settled sale of {n:,}: {report}":
        "对一场已经结清、共 {n:,} 件的秒杀做对账，却发现了差异：{report}",
    "rounds must be from 1 to 5, not {rounds!r}":
        "rounds 必须在 1 到 5 之间，而不是 {rounds!r}",
    "py-spy is not installed: `pip install py-spy` (in the course's .venv: make tools)":
        "没有装 py-spy：`pip install py-spy`（课程的 .venv 里：make tools）",
    "a profile lasts 1 to 600 s, not {seconds:g}":
        "一次 profile 的时长要在 1 到 600 秒之间，而不是 {seconds:g}",
    "no tier is running: start one (`seckill tier up local-stock`) before profiling it":
        "没有正在运行的 tier：先启动一档（`seckill tier up local-stock`）再做 profile",
    "py-spy could not profile the tier: {reason[:200]}{hint}":
        "py-spy 没能对这一档做 profile：{reason[:200]}{hint}",
    "nginx answered {w.requests - w.count(200)} of {w.requests} ceiling requests with something else "
    "than 200; see {s.run_dir / 'logs' / 'nginx.log'}":
        "测上限的 {w.requests} 个请求里，nginx 有 {w.requests - w.count(200)} 个回的不是 200；"
        "看看 {s.run_dir / 'logs' / 'nginx.log'}",
    "no tier called {', '.join(map(repr, unknown))}; choose among: {', '.join(ladder.TIERS)}":
        "没有叫 {', '.join(map(repr, unknown))} 的 tier；可选的有："
        "{', '.join(ladder.TIERS)}",
    "redis-benchmark did not finish within 120 s": "redis-benchmark 在 120 秒内没有跑完",
    "redis-benchmark failed (exit {done.returncode}): {done.stderr.strip()[:200]}":
        "redis-benchmark 执行失败（退出码 {done.returncode}）：{done.stderr.strip()[:200]}",
    "the arrival rate must be from 1 to 100,000 requests/s, not {rate!r}":
        "到达速率必须在每秒 1 到 100,000 个请求之间，而不是 {rate!r}",
    "the bench only loads this machine (127.0.0.1), not {url}": "基准测试只压本机（127.0.0.1），不能压 {url}",
    "the drain consumed {handled} and wrote {written} of {n} orders; see `seckill logs postgres` — "
    "the bench reports only what it could verify":
        "{n} 个订单里，消费掉了 {handled} 个、写入了 {written} 个；看看 `seckill logs postgres`（基准测试只报告它能核实的结果）",
    "the guarded update found no stock in the PostgreSQL ceiling run": "测 PostgreSQL 上限时，带条件的 update 没有找到库存",
    "the queue {queue!r} holds {seen} messages, expected {depth}; is RabbitMQ short of memory or "
    "disk? `seckill logs rabbitmq` shows why":
        "队列 {queue!r} 里有 {seen} 条消息，预期是 {depth} 条；RabbitMQ 是不是内存或磁盘不够了？`seckill logs rabbitmq` 能看出原因",
    "the script took {taken} items for {buyers} buyers under redis-benchmark; the ceiling is only "
    "reported when the script did its work":
        "在 redis-benchmark 下，脚本给 {buyers} 个买家扣了 {taken} 件；"
        "只有脚本把活干对了，才会报告上限",
    "wrk did not finish within {duration_s + 60:.0f} s against {url}":
        "wrk 压 {url} 时，在 {duration_s + 60:.0f} 秒内没有结束",
    "wrk failed (exit {done.returncode}) against {url}: {(done.stderr or done.stdout).strip()[:200]}":
        "wrk 压 {url} 时执行失败（退出码 {done.returncode}）：{(done.stderr or done.stdout).strip()[:200]}",
    "wrk printed no BENCH_JSON line (was it run with -s buy.lua?); its output began: {first}":
        "wrk 没有输出 BENCH_JSON 这一行（运行时带了 -s buy.lua 吗？）；它的输出开头是："
        "{first}",
    "wrk's BENCH_JSON line is not what buy.lua writes ({type(exc).__name__}: {exc}); the line began: "
    "{line[:120]}":
        "wrk 的 BENCH_JSON 行不是 buy.lua 写出的格式（{type(exc).__name__}: {exc}）"
        "；这一行的开头是：{line[:120]}",
    "{name} is not installed; `make bench` installs it, or run: sudo apt-get install {package}":
        "没有安装 {name}；`make bench` 会装它，或者运行：sudo apt-get install {package}",
    "{what} must be a whole number from 1 to {MAX_MESSAGES:,}, not {n!r}":
        "{what} 必须是 1 到 {MAX_MESSAGES:,} 之间的整数，而不是 {n!r}",
    "app tier {app_tier!r}: choose one of {', '.join(SEED_TIER_RPS)}":
        "应用层 {app_tier!r}：请从 {', '.join(SEED_TIER_RPS)} 里选一个",
    "design {sc.design!r}: choose one of {', '.join(DESIGNS)}":
        "方案 {sc.design!r}：请从 {', '.join(DESIGNS)} 里选一个",
    "peak_qps ({sc.peak_qps:,.0f}) cannot exceed client_qps ({sc.client_qps:,.0f}): the limits only "
    "let through part of what clients send":
        "peak_qps（{sc.peak_qps:,.0f}）不能超过 client_qps（{sc.client_qps:,.0f}）"
        "：限流只会放过客户端发来的一部分请求",
    "{name} must be a number, got {value!r}": "{name} 必须是数字，收到的是 {value!r}",
    "{name} must be greater than 0, got {value!r}": "{name} 必须大于 0，收到的是 {value!r}",
    "no tier called {name!r}; choose one of: {', '.join(tiers.TIERS)}":
        "没有叫 {name!r} 的 tier；可选的有：{', '.join(tiers.TIERS)}",
    "{report.scenario} needs a tier with a queue and an order service; use flask, flask-x4 or fastapi":
        "{report.scenario} 需要一个带消息队列和订单服务的 tier；请用 flask、flask-x4 或 fastapi",
    "no crash point {unknown[0]!r}; choose from {', '.join(order_service.CRASH_POINTS)}":
        "没有 {unknown[0]!r} 这个崩溃点；可选的有：{', '.join(order_service.CRASH_POINTS)}",
    "the crashed order service left no readable {path}: {exc}": "崩溃的订单服务没有留下可读的 {path}：{exc}",
    "the order service armed with consumer-crash:{point} did not crash within 30 s; see `seckill logs "
    "{ORDER_SERVICE}`":
        "设置了 consumer-crash:{point} 的订单服务在 30 秒内没有崩溃；看看 `seckill logs {ORDER_SERVICE}`",
    "{orders} orders × {len(points)} rounds need a stock of at least {orders * len(points)}":
        "{orders} 个订单 × {len(points)} 轮，库存至少要有 {orders * len(points)}",
    "no tier called {tier!r}; choose one of: {', '.join(tiers.TIERS)}":
        "没有叫 {tier!r} 的 tier；可选的有：{', '.join(tiers.TIERS)}",
    "{report.scenario} needs a tier that reserves in Redis; use flask, flask-x4 or fastapi":
        "{report.scenario} 需要一个在 Redis 里预减库存的 tier；请用 flask、flask-x4 或 fastapi",
    "SECKILL_REDIS_SENTINEL={s.redis_sentinel!r}: give host:port, e.g. 127.0.0.1:16381":
        "SECKILL_REDIS_SENTINEL={s.redis_sentinel!r}：请给 host:port，"
        "例如 127.0.0.1:16381",
    "SECKILL_TRUSTED_PROXIES: {entry!r} is not an address or network like 127.0.80.80 or 10.0.0.0/8":
        "SECKILL_TRUSTED_PROXIES：{entry!r} 不是地址或网段（应该像 127.0.80.80 或 10.0.0.0/8 这样）",
    "an open-loop process did not start: {child.stderr.read().strip()[-200:]}":
        "开环压测进程没有启动起来：{child.stderr.read().strip()[-200:]}",
    "an open-loop process failed (exit {child.returncode}): {err.strip().splitlines()[-1][:200] if "
    "err.strip() else '(no message)'}":
        "开环压测进程失败了（退出码 {child.returncode}）：{err.strip().splitlines()[-1][:200] if err.strip() else '(no message)'}",
    "part {part!r} of {parts!r}: need 0 <= part < parts": "{parts!r} 份中的第 {part!r} 份：要求 0 <= part < parts",
    "the arrival rate must be a positive number of requests/s, not {rate!r}": "到达速率必须是正数（每秒请求数），而不是 {rate!r}",
    "the duration must be a positive number of seconds, not {duration_s!r}": "持续时间必须是正的秒数，而不是 {duration_s!r}",
    "the generator only loads this machine (127.0.0.1), not {url}": "压测生成器只压本机（127.0.0.1），不能压 {url}",
    "the open-loop generator did not finish within {limit:.0f} s": "开环压测生成器在 {limit:.0f} 秒内没有结束",
    "{rate:g} requests/s for {duration_s:g} s is {total:,} requests; at most {MAX_REQUESTS:,} per run":
        "每秒 {rate:g} 个请求、持续 {duration_s:g} 秒，一共是 {total:,} 个请求；"
        "每次最多 {MAX_REQUESTS:,} 个",
    "{INJECT_ENV}={spec!r}: use consumer-crash:after-commit or consumer-crash:before-commit, or unset "
    "it":
        "{INJECT_ENV}={spec!r}：请用 consumer-crash:after-commit 或 consumer-crash:before-commit，"
        "或者 unset 它",
    "a rating is a whole number from 1 to 5, not {rating!r}": "评分是 1 到 5 之间的整数，而不是 {rating!r}",
    "language must be one of {', '.join(LANGS)}, not {lang!r}": "语言必须是 {', '.join(LANGS)} 之一，而不是 {lang!r}",
    "no card called {card_id!r}; the cards are: {', '.join(CARD_ORDER)}":
        "没有叫 {card_id!r} 的卡片；现有的卡片是：{', '.join(CARD_ORDER)}",
    "no part called {part!r}; the parts are: {', '.join(PART_ORDER)}":
        "没有叫 {part!r} 的部分；现有的部分是：{', '.join(PART_ORDER)}",
    "nothing to save yet: write notes for a part or answer a card first": "还没有可保存的内容：先给某一部分写点笔记，或者回答一张卡片",
    "reveal the model answer of {card_id!r} before rating yourself against it":
        "先揭开 {card_id!r} 的参考答案，再对照它给自己打分",
    "the peak is a positive whole number of requests per second, not {peak_qps!r}":
        "峰值是每秒请求数，必须是正整数，而不是 {peak_qps!r}",
    "no part called {part_id!r}; the parts are: {', '.join(PART_SECONDS)}":
        "没有叫 {part_id!r} 的部分；现有的部分是：{', '.join(PART_SECONDS)}",
    "after read_queue the queue's first messages came back out of order: {first[:10]} …":
        "read_queue 之后，队列最前面的几条消息顺序乱了：{first[:10]} …",
    "read_queue saw {seen} of {n} queued orders (complete={complete})":
        "队列里有 {n} 个订单，read_queue 只看到 {seen} 个（complete={complete}）",
    "the drain handled {handled} and wrote {written} of {n} orders":
        "{n} 个订单里，消费处理了 {handled} 个、写入了 {written} 个",
    "the {kind} step at {n:,} orders failed: {(done.stderr.strip().splitlines() or ['(no "
    "message)'])[-1][:200]}":
        "{n:,} 个订单时 {kind} 这一步失败了：{(done.stderr.strip().splitlines() or ['(no message)'])[-1][:200]}",
    "Sentinel did not find the replica within 30 s; see `seckill logs {SENTINEL}`":
        "哨兵在 30 秒内没有发现从库；看看 `seckill logs {SENTINEL}`",
    "port {port} for {name} is taken by {processes.who_listens(port)}; stop it or set {env_var} to a "
    "free port":
        "{name} 要用的端口 {port} 被 {processes.who_listens(port)} 占用了；"
        "停掉它，或者把 {env_var} 设成一个空闲端口",
    "the original Redis did not sync from port {current}; see `seckill logs redis`":
        "原来的 Redis 没有从端口 {current} 同步数据；看看 `seckill logs redis`",
    "the replica did not sync within 30 s; see `seckill logs {REPLICA}`":
        "从库在 30 秒内没有完成同步；看看 `seckill logs {REPLICA}`",
    "running as root, but there is no 'postgres' user to run PostgreSQL as; install the postgresql "
    "package or run as a normal user":
        "当前以 root 运行，但系统里没有用来运行 PostgreSQL 的 'postgres' 用户；"
        "安装 postgresql 包，或者用普通用户运行",
    "--auth {authenticator!r}: use pam (Unix passwords) or dummy (tests only)":
        "--auth {authenticator!r}：请用 pam（Unix 密码）或 dummy（仅供测试）",
    "--learners must be at least 1": "--learners 至少为 1",
    "no measurement yet: run `seckill workshop measure` first (about a minute)":
        "还没有测量结果：先运行 `seckill workshop measure`（大约一分钟）",
    "{files[-1]} is not valid JSON; delete it and run `seckill workshop measure`":
        "{files[-1]} 不是合法的 JSON；删掉它，再运行 `seckill workshop measure`",
    "{learners} learners need more than the {AUTO_BLOCKS} automatic port blocks on one host; give "
    "learners SECKILL_PORT_BASE by hand or use Zero to JupyterHub":
        "{learners} 个学员需要的端口段超过了单台主机上自动分配的 {AUTO_BLOCKS} 段；"
        "手动给学员设置 SECKILL_PORT_BASE，或者用 Zero to JupyterHub",
    "missing {', '.join((s.binary for s in servers))}: install with `sudo apt-get install -y {apt}` "
    "(Debian/Ubuntu), `brew install {brew}` (macOS) or `conda install -c conda-forge {conda}`, then "
    "run the command again":
        "缺少 {', '.join((s.binary for s in servers))}：用 `sudo apt-get install -y {apt}`（Debian/Ubuntu）"
        "、`brew install {brew}`（macOS）或 `conda install -c conda-forge {conda}` 安装，"
        "然后再运行一次这条命令",
    "--hub-auth needs jupyterhub: pip install -e .[hub] (or make hub)":
        "--hub-auth 需要 jupyterhub：pip install -e .[hub]（或者 make hub）",
    "a batch of 300 orders for 300 products is written whole": "300 个商品各一单、共 300 单的一批订单能整批写入",
    "handle_batch decides each order as handle would, with its reason":
        "handle_batch 对每一单的判定都和 handle 一样，并带上各自的原因",
    "handle_batch must decide every order of a batch as handle would, one after the other: a copy of an order "
    "handled before changes nothing, and each other order is written or refused with its own reason (sold_out, "
    "already_bought, unknown_product), also when the batch mixes redelivered copies with new orders (a consumer "
    "restarted after a crash gets exactly such batches).":
        "handle_batch 必须像 handle 那样逐单判定一批订单里的每一单：已经处理过的订单再来一份副本，什么都不改变；"
        "其余每一单要么写入，要么带着自己的原因被拒绝（sold_out、already_bought、unknown_product），"
        "即使这一批里既有重新投递的副本、也有新订单（消费者崩溃重启后拿到的正是这样的批次）。",
    "handle_batch must write a batch of any size: a batch is as large as the consumer's prefetch and batch size "
    "allow, and they may be set well above the defaults. Nothing in a batch of orders that all have stock may be "
    "refused because of how many there are.":
        "handle_batch 必须能写入任意大小的一批订单：一批有多大，取决于消费者的 prefetch 和批量大小，"
        "而它们可以设得远大于默认值。一批订单只要都有库存，就不能因为数量多而拒绝其中任何一单。",
}
