using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// The mode pages of a volume (SPC-4 7.5, SBC-3 6.4): Read-Write Error Recovery (01h),
/// Caching (08h) and Control (0Ah). The only changeable fields are WCE and D_SENSE; the values
/// live on the <see cref="Volume"/>, so a MODE SELECT on one path is seen on every path.
/// </summary>
internal static class ModePages
{
    public const byte ReadWriteErrorRecovery = 0x01;
    public const byte Caching = 0x08;
    public const byte Control = 0x0A;
    public const byte AllPages = 0x3F;

    public enum PageControl : byte { Current = 0, Changeable = 1, Default = 2, Saved = 3 }

    /// <summary>Total length of a page including its 2-byte header; 0 if we do not have it.</summary>
    public static int LengthOf(byte page) => page switch
    {
        ReadWriteErrorRecovery => 12,
        Caching => 20,
        Control => 12,
        _ => 0,
    };

    /// <summary>Writes one page as current, changeable or default values; returns its length.</summary>
    public static int Write(byte page, Volume volume, PageControl pc, Span<byte> b)
    {
        int n = LengthOf(page);
        if (n == 0) return 0;
        b.Slice(0, n).Clear();
        b[0] = page; // PS=0: we cannot save pages
        b[1] = (byte)(n - 2);
        bool changeable = pc == PageControl.Changeable;
        switch (page)
        {
            case ReadWriteErrorRecovery:
                // SBC-3 6.4.7: no automatic reallocation, no retries to report; all zero.
                break;
            case Caching:
                // SBC-3 6.4.5: WCE bit 2 of byte 2; RCD=0 (reads may be served from the cache).
                bool wce = changeable || (pc == PageControl.Default ? true : volume.WriteCacheEnabled);
                if (wce) b[2] |= 0x04;
                break;
            case Control:
                // SPC-4 7.5.8.
                if (changeable)
                {
                    b[2] = 0x04; // D_SENSE
                    break;
                }
                bool dsense = pc != PageControl.Default && volume.DescriptorSense;
                b[2] = (byte)(0x02 | (dsense ? 0x04 : 0)); // GLTSD (no log parameters to save) | D_SENSE
                b[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering; QERR 0
                b[5] = 0x40; // TAS: LIO reports TASK ABORTED for commands aborted by another nexus
                Be.U16(b, 8, 0xFFFF); // BUSY TIMEOUT PERIOD: unlimited
                break;
        }
        return n;
    }
}
