namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>
/// The shared-memory layout of <c>include/uapi/linux/target_core_user.h</c> (mailbox version 2),
/// as offsets for raw pointer access. The entry's inner req/rsp structs keep natural alignment
/// even though the outer struct is packed: hence the hole at 20 and the iovecs at 48
/// (docs/tcmu.md §4, §5).
/// </summary>
public static class TcmuAbi
{
    public const ushort MailboxVersion = 2;
    public const int MailboxSize = 128;

    // struct tcmu_mailbox
    public const int MbVersion = 0;
    public const int MbFlags = 2;
    public const int MbCmdrOff = 4;
    public const int MbCmdrSize = 8;
    public const int MbCmdHead = 12;
    public const int MbCmdTail = 64; // alone on its cache line (__aligned__(64))

    public const ushort CapOutOfOrderCompletion = 0x1;
    public const ushort CapReadLen = 0x2;
    public const ushort CapTmr = 0x4;
    public const ushort CapKeepBuf = 0x8;

    // struct tcmu_cmd_entry_hdr
    public const int HdrLenOp = 0;
    public const int HdrCmdId = 4;
    public const int HdrKFlags = 6;
    public const int HdrUFlags = 7;
    public const int HdrSize = 8;
    public const uint OpMask = 0x7;
    public const int AlignSize = 8; // TCMU_OP_ALIGN_SIZE

    public const byte OpPad = 0;
    public const byte OpCmd = 1;
    public const byte OpTmr = 2;

    public const byte UFlagUnknownOp = 0x1;
    public const byte UFlagReadLen = 0x2;
    public const byte UFlagKeepBuf = 0x4;

    // struct tcmu_cmd_entry, request view
    public const int ReqIovCnt = 8;
    public const int ReqIovBidiCnt = 12;
    public const int ReqIovDifCnt = 16;
    public const int ReqCdbOff = 24;
    public const int ReqIov = 48;
    public const int IovSize = 16; // struct iovec on a 64-bit kernel

    // struct tcmu_cmd_entry, response view (same memory)
    public const int RspScsiStatus = 8;
    public const int RspReadLen = 12;
    public const int RspSenseBuffer = 16;
    public const int SenseBufferSize = 96;

    /// <summary>sizeof(struct tcmu_cmd_entry): every CMD entry the kernel writes is at least this long,
    /// so a response always fits in any genuine CMD slot.</summary>
    public const int CmdEntrySize = 112;

    // struct tcmu_tmr_entry
    public const int TmrType = 8;
    public const int TmrCmdCnt = 12;
    public const int TmrCmdIds = 32;
    public const int TmrEntrySize = 32;

    public static uint EntryLength(uint lenOp) => lenOp & ~OpMask;
    public static byte EntryOp(uint lenOp) => (byte)(lenOp & OpMask);
}

/// <summary>tcmu_tmr_type (docs/tcmu.md §5, §11).</summary>
public enum TmrType : byte
{
    Unknown = 0,
    AbortTask = 1,
    AbortTaskSet = 2,
    ClearAca = 3,
    ClearTaskSet = 4,
    LunReset = 5,
    TargetWarmReset = 6,
    TargetColdReset = 7,
    /// <summary>Pseudo reset the kernel raises for an in-kernel PREEMPT AND ABORT.</summary>
    LunResetPro = 128,
}

/// <summary>Tells the kernel that completions are in the ring (a 4-byte write to /dev/uioN).</summary>
public interface IRingNotifier
{
    void Kick();
}

/// <summary>Receives what <see cref="TcmuRing.Drain"/> finds, on the draining thread.</summary>
public interface IRingConsumer
{
    /// <summary>A command to execute; hand it back through <see cref="TcmuRing.Complete"/> exactly once.</summary>
    void OnCommand(Scsi.ScsiCommand command);

    /// <summary>A task management notification; the listed ids still need a completion each (docs/tcmu.md §11).</summary>
    void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds);
}
