namespace TcmuSharedVolume.Interop;

/// <summary>
/// librados (Ceph's object store client), one declaration per function, each in its own file.
/// Calls return 0 or a negative errno; they do not set errno.
/// </summary>
public static unsafe partial class LibRados
{
    internal const string Library = "librados.so.2";

    /// <summary>librados.h LIBRADOS_OP_FLAG_FADVISE_FUA: the write must be durable when it completes.</summary>
    public const int LIBRADOS_OP_FLAG_FADVISE_FUA = 0x80;
}
