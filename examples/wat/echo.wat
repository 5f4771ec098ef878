;; echo.wat: a long-lived Nimbus function in hand-written WebAssembly. It
;; speaks the nimbus host ABI version 1 (docs/wasm-abi.md): it waits for an
;; invocation and answers with the event unchanged, forever. No WASI, no
;; language runtime: its cold start is the runtime's own floor.
;;
;; Regenerate echo.wasm (wabt: apt-get install wabt) from the repository root:
;;   wat2wasm examples/wat/echo.wat -o examples/wat/echo.wasm
(module
  (import "nimbus" "next" (func $next (param i32 i32) (result i32)))
  (import "nimbus" "respond" (func $respond (param i32 i32) (result i32)))

  ;; One page to start; the event buffer is memory itself, from offset 0.
  (memory (export "memory") 1)

  (func (export "_start")
    (local $size i32) ;; the event's size
    (local $cap i32)  ;; the buffer's size: all of memory
    (local.set $cap (i32.shl (memory.size) (i32.const 16)))
    (loop $serve
      ;; Blocks until an invocation arrives.
      (local.set $size (call $next (i32.const 0) (local.get $cap)))
      (if (i32.gt_u (local.get $size) (local.get $cap))
        (then
          ;; The event does not fit: the host keeps it pending. Grow memory to
          ;; ceil(size / 64 KiB) pages and ask again; a refused grow (memory
          ;; limit) traps.
          (if (i32.eq
                (memory.grow
                  (i32.sub
                    (i32.shr_u (i32.add (local.get $size) (i32.const 65535)) (i32.const 16))
                    (memory.size)))
                (i32.const -1))
            (then unreachable))
          (local.set $cap (i32.shl (memory.size) (i32.const 16)))
          (br $serve)))
      ;; The status is 0 unless there is no current invocation, which cannot
      ;; happen right after a successful next.
      (drop (call $respond (i32.const 0) (local.get $size)))
      (br $serve)))
)
